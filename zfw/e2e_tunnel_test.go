package zfw_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// openTun creates a tun device (IFF_TUN, no packet info) in ns and
// returns its file: reading gets what is sent into the device, writing
// injects packets as if they arrived on it.
func openTun(t *testing.T, ns *testenv.Namespace, name string) *os.File {
	t.Helper()
	var f *os.File
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if out, err := ns.Exec(context.Background(), "ip", "link", "set", name, "up"); err != nil {
		t.Fatalf("tun up: %v %s", err, out)
	}
	return f
}

// TestEndToEndTunnelMode: an intercepted UDP flow goes into the Ziti tun;
// the "tunneler" (this test, on the tun's file) answers, and the XDP
// program sends the reply straight back to the client. IPv4 and IPv6.
func TestEndToEndTunnelMode(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{TunnelMode: true}}}})
	tun := openTun(t, topo.Router, "zt0")
	ctx := context.Background()
	if err := r.fw.SetTunnel(ctx, zfw.Tunnel{Interface: "zt0", Prefix: netip.MustParsePrefix("100.64.0.0/10")}); err != nil {
		t.Fatal(err)
	}
	if got := r.fw.Tunnel(); got.Interface != "zt0" || got.Prefix.String() != "100.64.0.0/10" {
		t.Errorf("Tunnel() = %+v", got)
	}
	if err := r.fw.Register(ctx, intercept.Intercept{ServiceID: "tun-udp", Protocols: []intercept.Protocol{intercept.UDP},
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.91.0.0/24"), netip.MustParsePrefix("fd00:91::/64")},
		Ports:     []intercept.PortRange{{Low: 5353, High: 5353}}, TProxyPort: 1}); err != nil {
		t.Fatal(err)
	}
	services := []netip.AddrPort{netip.MustParseAddrPort("10.91.0.5:5353"), netip.MustParseAddrPort("[fd00:91::5]:5353")}
	// The tunneler: answer one UDP datagram to each service address.
	served := make(chan error, len(services))
	go func() {
		buf := make([]byte, 2048)
		tun.SetReadDeadline(time.Now().Add(10 * time.Second))
		for answered := 0; answered < len(services); {
			n, err := tun.Read(buf)
			if err != nil {
				served <- fmt.Errorf("read tun: %w", err)
				return
			}
			src, dst, udp, ok := udpInIP(buf[:n])
			if !ok || len(udp) < 8 {
				continue // IPv6 router solicitations and the like
			}
			sport, dport := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:])
			if !slices.Contains(services, netip.AddrPortFrom(dst, dport)) {
				continue
			}
			reply := packet.Build(packet.Spec{Src: dst, Dst: src, Proto: packet.UDP, SrcPort: dport, DstPort: sport, Payload: []byte("from the tun")})
			_, err = tun.Write(reply[14:]) // raw IP
			served <- err
			answered++
		}
	}()
	for _, svc := range services {
		before, err := r.fw.Stats()
		if err != nil {
			t.Fatal(err)
		}
		got, err := udpAsk(topo.Client, svc.String(), "hello tun")
		if err != nil {
			t.Fatalf("client to %s: %v", svc, err)
		}
		if !strings.HasPrefix(got, "from the tun") {
			t.Errorf("client to %s got %q", svc, got)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		// The reply came back through the XDP program, not routed by
		// the router's stack.
		after, err := r.fw.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if after.Tunneled <= before.Tunneled || after.TunReturned <= before.TunReturned {
			t.Errorf("%s: tunneled %d → %d, returned %d → %d; want both counted", svc,
				before.Tunneled, after.Tunneled, before.TunReturned, after.TunReturned)
		}
	}
	st, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Tunnel mode off: the flow goes to its (absent) socket, not the tun.
	if err := r.fw.SetTunnel(ctx, zfw.Tunnel{}); err != nil {
		t.Fatal(err)
	}
	if _, err := udpAsk(topo.Client, "10.91.0.5:5353", "again"); err == nil {
		t.Error("a reply came with tunnel mode off and no listener")
	}
	if after, _ := r.fw.Stats(); after.Tunneled != st.Tunneled || after.NoListener == 0 {
		t.Errorf("with tunnel mode off: tunneled %d -> %d, no-listener drops %d", st.Tunneled, after.Tunneled, after.NoListener)
	}
}

// udpInIP splits a raw IPv4 or IPv6 packet carrying UDP (no IPv6
// extension headers) into its addresses and UDP header and payload.
func udpInIP(p []byte) (src, dst netip.Addr, udp []byte, ok bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4 && p[9] == packet.UDP:
		ihl := int(p[0]&0xf) * 4
		if len(p) < ihl {
			return src, dst, nil, false
		}
		return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), p[ihl:], true
	case len(p) >= 40 && p[0]>>4 == 6 && p[6] == packet.UDP:
		return netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), p[40:], true
	}
	return src, dst, nil, false
}

// Tunnel mode turned on for an interface (zfw -T, as ziti-edge-tunnel
// does it) with no tunnel set takes the namespace's one tun named
// ziti*, and attaches the return program to it; a veth named ziti* is
// no tun, and with no tun nothing is set.
func TestTunnelModeTakesTheNamespacesZitiTun(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tun  bool
		want string
	}{
		{name: "with the tun", tun: true, want: "ziti0"},
		{name: "without", tun: false, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := testenv.NewTestTopology(t)
			r := newRouter(t, topo, zfw.Options{})
			if out, err := topo.Router.Exec(ctx, "ip", "link", "add", "ziti9", "type", "veth", "peer", "name", "ziti8"); err != nil {
				t.Fatalf("veth: %v %s", err, out)
			}
			if tc.tun {
				openTun(t, topo.Router, "ziti0")
			}
			s := zfw.InterfaceSettings{TunnelMode: true}
			if err := r.fw.SetInterface(ctx, topo.RouterClientIf, s); err != nil {
				t.Fatal(err)
			}
			if got := r.fw.Tunnel().Interface; got != tc.want {
				t.Errorf("Tunnel().Interface = %q, want %q", got, tc.want)
			}
			if tc.tun {
				out, err := topo.Router.Exec(ctx, "ip", "link", "show", "ziti0")
				if err != nil || !strings.Contains(string(out), "xdpgeneric") {
					t.Errorf("no XDP program on the taken tun: %v %s", err, out)
				}
			}
		})
	}
}
