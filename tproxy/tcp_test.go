package tproxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zfw-go/zfw/testenv"
	"golang.org/x/sys/unix"
)

var _ net.Listener = (*TCPListener)(nil)

func TestTCPListenerAcceptsWithOriginalDestination(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l := listenTCP(t, addr)
			if l.Port() == 0 {
				t.Fatal("Port() = 0, want the port the kernel chose")
			}
			if got := l.Addr().(*net.TCPAddr).AddrPort().Port(); got != l.Port() {
				t.Errorf("Addr() port %d, Port() %d", got, l.Port())
			}
			dst := netip.AddrPortFrom(netip.MustParseAddrPort(addr).Addr(), l.Port())

			client, err := net.DialTimeout("tcp", dst.String(), waitTimeout)
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
			c.SetDeadline(time.Now().Add(waitTimeout))
			if got := c.LocalAddr().(*net.TCPAddr).AddrPort(); got != dst {
				t.Errorf("LocalAddr() = %s, want the dialled address %s", got, dst)
			}
			if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr() = %s, want the client's %s", got, want)
			}

			if _, err := client.Write([]byte("ping\n")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "ping\n" {
				t.Fatalf("server read %q, %v; want \"ping\\n\"", line, err)
			}
			if _, err := c.Write([]byte("pong\n")); err != nil {
				t.Fatal(err)
			}
			line, err = bufio.NewReader(client).ReadString('\n')
			if err != nil || line != "pong\n" {
				t.Fatalf("client read %q, %v; want \"pong\\n\"", line, err)
			}
		})
	}
}

func TestTCPListenerAcceptTCP(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenTCP(t, "127.0.0.1:0")
	client, err := net.DialTimeout("tcp", l.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if mp, err := c.MultipathTCP(); err != nil || mp {
		t.Errorf("accepted connection MultipathTCP() = %v, %v; want plain TCP", mp, err)
	}
}

// TestListenSetsTransparentSocketOptions proves the listeners are
// transparent without steering traffic into them: the options the kernel
// reports are the ones zfw relies on.
func TestListenSetsTransparentSocketOptions(t *testing.T) {
	testenv.RequirePrivileged(t)
	type opt struct {
		level, name int
		desc        string
		want        int
	}
	var (
		reuse    = opt{unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR", 1}
		tcp      = opt{unix.SOL_SOCKET, unix.SO_PROTOCOL, "SO_PROTOCOL (not MPTCP)", unix.IPPROTO_TCP}
		udp      = opt{unix.SOL_SOCKET, unix.SO_PROTOCOL, "SO_PROTOCOL", unix.IPPROTO_UDP}
		inet     = opt{unix.SOL_SOCKET, unix.SO_DOMAIN, "SO_DOMAIN", unix.AF_INET}
		inet6    = opt{unix.SOL_SOCKET, unix.SO_DOMAIN, "SO_DOMAIN", unix.AF_INET6}
		transp   = opt{unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT", 1}
		transp6  = opt{unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT", 1}
		origdst  = opt{unix.SOL_IP, unix.IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR", 1}
		origdst6 = opt{unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR", 1}
		v6only   = opt{unix.SOL_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 1}
		dual     = opt{unix.SOL_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 0}
	)
	tests := []struct {
		proto, addr string
		want        []opt
	}{
		{"tcp", "127.0.0.1:0", []opt{tcp, inet, reuse, transp}},
		{"tcp", "0.0.0.0:0", []opt{tcp, inet, reuse, transp}},
		{"tcp", "[::ffff:127.0.0.1]:0", []opt{tcp, inet, reuse, transp}},
		{"tcp", "[::1]:0", []opt{tcp, inet6, reuse, transp6, v6only}},
		{"tcp", "[::]:0", []opt{tcp, inet6, reuse, transp6, dual}},
		{"udp", "127.0.0.1:0", []opt{udp, inet, reuse, transp, origdst}},
		{"udp", "0.0.0.0:0", []opt{udp, inet, reuse, transp, origdst}},
		{"udp", "[::1]:0", []opt{udp, inet6, reuse, transp6, origdst6, v6only}},
		{"udp", "[::]:0", []opt{udp, inet6, reuse, transp6, origdst6, origdst, dual}},
	}
	for _, tt := range tests {
		t.Run(tt.proto+" "+tt.addr, func(t *testing.T) {
			var c syscall.Conn
			if tt.proto == "tcp" {
				c = listenTCP(t, tt.addr).ln
			} else {
				c = listenUDP(t, tt.addr, UDPOptions{}).conn
			}
			for _, o := range tt.want {
				if got := getsockopt(t, c, o.level, o.name); got != o.want {
					t.Errorf("%s = %d, want %d", o.desc, got, o.want)
				}
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	testenv.RequirePrivileged(t)
	tcpBusy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpBusy.Close()
	udpBusy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpBusy.Close()
	tcpAddr := tcpBusy.Addr().(*net.TCPAddr).AddrPort()
	udpAddr := udpBusy.LocalAddr().(*net.UDPAddr).AddrPort()

	listen := map[string]func(netip.AddrPort) error{
		"tcp": func(a netip.AddrPort) error {
			l, err := ListenTCP(context.Background(), a)
			if err == nil {
				l.Close()
			}
			return err
		},
		"udp": func(a netip.AddrPort) error {
			l, err := ListenUDP(context.Background(), a, UDPOptions{})
			if err == nil {
				l.Close()
			}
			return err
		},
	}
	tests := []struct {
		name, proto string
		addr        netip.AddrPort
		wantIn      []string
		wantIs      error
	}{
		{"tcp invalid address", "tcp", netip.AddrPort{}, []string{"tproxy: listen tcp: invalid address"}, nil},
		{"udp invalid address", "udp", netip.AddrPort{}, []string{"tproxy: listen udp: invalid address"}, nil},
		{"tcp port in use", "tcp", tcpAddr, []string{"tproxy: listen tcp4 ", tcpAddr.String()}, syscall.EADDRINUSE},
		{"udp port in use", "udp", udpAddr, []string{"tproxy: listen udp4 ", udpAddr.String()}, syscall.EADDRINUSE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := listen[tt.proto](tt.addr)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}

	t.Run("negative UDP option", func(t *testing.T) {
		_, err := ListenUDP(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), UDPOptions{QueueLen: -1})
		if err == nil || !strings.Contains(err.Error(), "tproxy: listen udp4 127.0.0.1:0: negative QueueLen") {
			t.Errorf("error %v, want one naming the address and the option", err)
		}
	})
}

func TestTCPListenerClose(t *testing.T) {
	testenv.RequirePrivileged(t)
	l := listenTCP(t, "127.0.0.1:0")
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !isClosedErr(err) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept still blocked after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}
