package zfw_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// TestEndToEndMasqueradingRouter: the router runs only this library. The
// client's TCP and UDP reach the server from the router's address and
// the replies come back; nothing unsolicited gets in to the client.
func TestEndToEndMasqueradingRouter(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterServerIf, InterfaceSettings: zfw.InterfaceSettings{
		DefaultDeny: true, Masquerade: true,
	}}}})
	// Servers that answer with the address they saw.
	var tcp4, tcp6 net.Listener
	var udp net.PacketConn
	err := topo.Server.Do(func() error {
		var err error
		if tcp4, err = net.Listen("tcp", netip.AddrPortFrom(topo.ServerAddr4.Addr(), 0).String()); err != nil {
			return err
		}
		if tcp6, err = net.Listen("tcp", netip.AddrPortFrom(topo.ServerAddr6.Addr(), 0).String()); err != nil {
			return err
		}
		udp, err = net.ListenPacket("udp", ":0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tcp4.Close()
	defer tcp6.Close()
	defer udp.Close()
	for _, ln := range []net.Listener{tcp4, tcp6} {
		testenv.Serve(ln.Accept, func(c net.Conn) {
			fmt.Fprintf(c, "%s\n", c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
		})
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo([]byte(from.(*net.UDPAddr).AddrPort().Addr().Unmap().String()), from)
		}
	}()
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	for _, tc := range []struct {
		dst  string
		want netip.Addr
	}{
		{tcp4.Addr().String(), topo.RouterServerAddr4.Addr()},
		{tcp6.Addr().String(), topo.RouterServerAddr6.Addr()},
	} {
		c, err := topo.Client.DialTCP(tc.dst, 5*time.Second)
		if err != nil {
			t.Fatalf("TCP through the router to %s: %v", tc.dst, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != tc.want.String()+"\n" {
			t.Errorf("server %s saw %q (%v), want the router's address %s", tc.dst, line, err, tc.want)
		}
	}
	for _, tc := range []struct {
		dst  netip.Addr
		want netip.Addr
	}{
		{topo.ServerAddr4.Addr(), topo.RouterServerAddr4.Addr()},
		{topo.ServerAddr6.Addr(), topo.RouterServerAddr6.Addr()},
	} {
		dst := netip.AddrPortFrom(tc.dst, uint16(udpPort)).String()
		got, err := udpAsk(topo.Client, dst, "x")
		if err != nil || got != tc.want.String() {
			t.Errorf("UDP to %s: server saw %q (%v), want %s", dst, got, err, tc.want)
		}
	}
	// A datagram to a closed port: the server's port unreachable comes
	// back through the router, translated, to the client's socket.
	for _, dst := range []netip.Addr{topo.ServerAddr4.Addr(), topo.ServerAddr6.Addr()} {
		var c net.Conn
		if err := topo.Client.Do(func() error {
			var err error
			c, err = net.Dial("udp", netip.AddrPortFrom(dst, 9).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("anyone?"))
		_, err := c.Read(make([]byte, 16))
		c.Close()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("UDP to closed port %s:9: %v, want the port unreachable error (connection refused)", dst, err)
		}
	}
	// ICMP echo, through raw sockets: the server sees the router's
	// address, the client gets its reply.
	var cRaw, sRaw net.PacketConn
	if err := topo.Client.Do(func() error {
		var err error
		cRaw, err = net.ListenPacket("ip4:icmp", topo.ClientAddr4.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cRaw.Close()
	if err := topo.Server.Do(func() error {
		var err error
		sRaw, err = net.ListenPacket("ip4:icmp", topo.ServerAddr4.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sRaw.Close()
	echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'z', 'f', 'w', '!'}
	binary.BigEndian.PutUint16(echo[2:], packet.Checksum(echo))
	if _, err := cRaw.WriteTo(echo, &net.IPAddr{IP: topo.ServerAddr4.Addr().AsSlice()}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	sRaw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := sRaw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("server did not see the echo request: %v", err)
		}
		if n >= 8 && buf[0] == 8 {
			if got := from.(*net.IPAddr).IP.String(); got != topo.RouterServerAddr4.Addr().String() {
				t.Errorf("server saw the echo request from %s, want the router's address", got)
			}
			break
		}
	}
	cRaw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := cRaw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("client got no echo reply: %v", err)
		}
		if n >= 8 && buf[0] == 0 && buf[4] == 0x12 && buf[5] == 0x34 {
			break
		}
	}

	// Unsolicited: the server connects to a listener on the client.
	var ln net.Listener
	if err := topo.Client.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":7779")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused(t, topo.Server, netip.AddrPortFrom(topo.ClientAddr4.Addr(), 7779).String(), 2*time.Second, "an unsolicited connection from outside reached the client")
	st, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Masqueraded == 0 || st.Unmasqueraded == 0 {
		t.Errorf("stats %+v: want translated packets both ways", st)
	}
}
