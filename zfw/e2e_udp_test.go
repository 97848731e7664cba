package zfw_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

// echoUDP answers every datagram of every session with its payload and
// the session's original destination.
func echoUDP(t *testing.T, ns *testenv.Namespace, addr string) *tproxy.UDPListener {
	t.Helper()
	var ln *tproxy.UDPListener
	err := ns.Do(func() error {
		var err error
		ln, err = tproxy.ListenUDP(context.Background(), netip.MustParseAddrPort(addr), tproxy.UDPOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	testenv.Serve(ln.Accept, func(s *tproxy.UDPSession) {
		buf := make([]byte, 2048)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(s, "%s %s %s", buf[:n], s.OriginalDst(), s.ClientAddr()); err != nil {
				t.Logf("udp echo: %v", err)
			}
		}
	})
	return ln
}

// udpAsk sends one datagram from a socket in ns and waits for the reply,
// checking it comes from the address it was sent to.
func udpAsk(ns *testenv.Namespace, dst, msg string) (string, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", nil)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.WriteToUDP([]byte(msg), to); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", err
	}
	if from.Addr().Unmap() != to.AddrPort().Addr() || from.Port() != to.AddrPort().Port() {
		return "", fmt.Errorf("reply came from %s, not %s", from, dst)
	}
	return strings.TrimSuffix(string(buf[:n]), " "+c.LocalAddr().String()), nil
}

func TestEndToEndUDP(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	ln4 := echoUDP(t, topo.Router, "127.0.0.1:0")
	ln6 := echoUDP(t, topo.Router, "[::1]:0")
	ctx := context.Background()
	for _, ic := range []intercept.Intercept{
		{ServiceID: "dns4", Protocols: []intercept.Protocol{intercept.UDP}, Addresses: []netip.Prefix{netip.MustParsePrefix("10.94.0.0/24")}, Ports: []intercept.PortRange{{Low: 5353, High: 5354}}, TProxyPort: ln4.Port()},
		{ServiceID: "dns6", Protocols: []intercept.Protocol{intercept.UDP}, Addresses: []netip.Prefix{netip.MustParsePrefix("fd00:94::/64")}, Ports: []intercept.PortRange{{Low: 5353, High: 5353}}, TProxyPort: ln6.Port()},
	} {
		if err := r.fw.Register(ctx, ic); err != nil {
			t.Fatal(err)
		}
	}
	for _, dst := range []string{"10.94.0.3:5353", "10.94.0.4:5354", "[fd00:94::3]:5353"} {
		t.Run(dst, func(t *testing.T) {
			for i := range 3 {
				msg := fmt.Sprintf("q%d", i)
				got, err := udpAsk(topo.Client, dst, msg)
				if err != nil {
					t.Fatal(err)
				}
				if want := msg + " " + dst; !strings.HasPrefix(got, want) {
					t.Errorf("reply %q, want %q (listener must see the original destination)", got, want)
				}
			}
		})
	}
	if err := r.fw.Unregister(ctx, "dns4"); err != nil {
		t.Fatal(err)
	}
	if got, err := udpAsk(topo.Client, "10.94.0.3:5353", "late"); err == nil {
		t.Errorf("datagram steered after Unregister: %q", got)
	}
}
