package tproxy

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/zfw-go/zfw/testenv"
	"golang.org/x/sys/unix"
)

// serviceTable is the routing table that delivers the service prefixes
// locally in nonLocalNamespace, as zfw's fwmark rule does.
const serviceTable = 100

// nonLocalNamespace makes a namespace in which the service prefixes
// 10.9.0.0/24 and fd00:9::/64 are delivered to local sockets by a policy
// route, without being addresses of the host, and clients have the
// addresses 10.8.0.1 and fd00:8::1 on lo. A socket answering from a
// service address there sends from a non-local address, which only a
// transparent socket may do.
func nonLocalNamespace(t *testing.T) *testenv.Namespace {
	t.Helper()
	ns := testenv.NewTestNamespace(t, "tproxy")
	nl := ns.Netlink()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.8.0.1/32", "fd00:8::1/128"} {
		addr := &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}
		if err := nl.AddrAdd(lo, addr); err != nil {
			t.Fatalf("add %s to lo: %v", a, err)
		}
	}
	for _, p := range []string{"10.9.0.0/24", "fd00:9::/64"} {
		pfx := netip.MustParsePrefix(p)
		route := &netlink.Route{
			LinkIndex: lo.Attrs().Index,
			Dst:       prefixNet(pfx),
			Type:      unix.RTN_LOCAL,
			Scope:     netlink.SCOPE_HOST,
			Table:     serviceTable,
		}
		if err := nl.RouteAdd(route); err != nil {
			t.Fatalf("add local route %s: %v", p, err)
		}
		rule := netlink.NewRule()
		rule.Dst = prefixNet(pfx)
		rule.Table = serviceTable
		rule.Priority = 100
		rule.Family = unix.AF_INET
		if pfx.Addr().Is6() {
			rule.Family = unix.AF_INET6
		}
		if err := nl.RuleAdd(rule); err != nil {
			t.Fatalf("add rule to %s: %v", p, err)
		}
	}
	return ns
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// TestTransparentNonLocalDestination proves transparency end to end: a
// listener receives traffic for addresses the host does not own and
// answers from them. Without IP_TRANSPARENT (IPV6_TRANSPARENT) the kernel
// refuses to send a UDP reply from such an address, of either family, or
// an IPv4 SYN-ACK (IPv6 does not check the SYN-ACK's source, so the IPv6
// TCP case shows only that the original destination is kept).
func TestTransparentNonLocalDestination(t *testing.T) {
	testenv.RequirePrivileged(t)
	ns := nonLocalNamespace(t)
	tests := []struct{ listen, client, service string }{
		{"0.0.0.0:0", "10.8.0.1", "10.9.0.5"},
		{"[::]:0", "fd00:8::1", "fd00:9::5"},
	}
	for _, tt := range tests {
		t.Run("tcp "+tt.service, func(t *testing.T) {
			var (
				l      *TCPListener
				client net.Conn
			)
			err := ns.Do(func() error {
				var err error
				l, err = ListenTCP(context.Background(), netip.MustParseAddrPort(tt.listen))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			dst := netip.AddrPortFrom(netip.MustParseAddr(tt.service), l.Port())
			err = ns.Do(func() error {
				d := net.Dialer{
					Timeout:   waitTimeout,
					LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.client)},
				}
				var err error
				client, err = d.Dial("tcp", dst.String())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			client.SetDeadline(time.Now().Add(waitTimeout))
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := unmap(c.LocalAddr().(*net.TCPAddr).AddrPort()); got != dst {
				t.Errorf("LocalAddr() = %s, want the service address %s", got, dst)
			}
			if _, err := c.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(client).ReadString('\n'); err != nil || line != "hello\n" {
				t.Errorf("client read %q, %v", line, err)
			}
		})

		t.Run("udp "+tt.service, func(t *testing.T) {
			var (
				l      *UDPListener
				client *net.UDPConn
			)
			err := ns.Do(func() error {
				var err error
				l, err = ListenUDP(context.Background(), netip.MustParseAddrPort(tt.listen), UDPOptions{})
				if err != nil {
					return err
				}
				client, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tt.client)})
				return err
			})
			if client != nil {
				defer client.Close()
			}
			if l != nil {
				defer l.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			dst := netip.AddrPortFrom(netip.MustParseAddr(tt.service), l.Port())
			send(t, client, dst, "ping")
			s := accept(t, l)
			if s.OriginalDst() != dst || s.ClientAddr() != clientAddr(client) {
				t.Errorf("session %s -> %s, want %s -> %s", s.ClientAddr(), s.OriginalDst(), clientAddr(client), dst)
			}
			if got := read(t, s); got != "ping" {
				t.Errorf("read %q, want \"ping\"", got)
			}
			if _, err := s.Write([]byte("pong")); err != nil {
				t.Fatalf("Write from the non-local %s: %v", dst, err)
			}
			if msg, from := receive(t, client); msg != "pong" || from != dst {
				t.Errorf("client received %q from %s, want \"pong\" from %s", msg, from, dst)
			}
		})

		// The control: a socket that is not transparent cannot answer
		// from the service address, so the test above means something.
		t.Run("udp without IP_TRANSPARENT fails "+tt.service, func(t *testing.T) {
			var plain *net.UDPConn
			err := ns.Do(func() error {
				var err error
				plain, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tt.listen)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			to := netip.AddrPortFrom(netip.MustParseAddr(tt.client), 9)
			oob := pktinfo(netip.MustParseAddr(tt.service))
			if _, _, err := plain.WriteMsgUDPAddrPort([]byte("x"), oob, to); err == nil {
				t.Errorf("a plain socket sent from the non-local %s", tt.service)
			}
		})
	}
}
