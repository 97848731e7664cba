package zfw_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/packet"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

// router is a Firewall attached to the router's client-facing interface,
// with TPROXY listeners opened in the router namespace.
type router struct {
	t    *testing.T
	topo *testenv.Topology
	pin  string
	fw   *zfw.Firewall
}

func pinPath() string { return fmt.Sprintf("/sys/fs/bpf/zfwt-e2e-%d", rand.Uint32()) }

func newRouter(t *testing.T, topo *testenv.Topology, opts zfw.Options) *router {
	t.Helper()
	r := &router{t: t, topo: topo, pin: opts.PinPath}
	if r.pin == "" {
		r.pin = pinPath()
	}
	opts.PinPath = r.pin
	if len(opts.Interfaces) == 0 {
		opts.Interfaces = []zfw.Interface{{Name: topo.RouterClientIf}}
	}
	start := time.Now()
	err := topo.Router.Do(func() error {
		fw, err := zfw.New(opts)
		r.fw = fw
		return err
	})
	if err != nil {
		t.Fatalf("zfw.New in router: %v", err)
	}
	// The kernel matrix and the bench report read this line.
	t.Logf("zfw.New: loaded and attached in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if r.fw != nil {
			r.fw.Close()
		}
	})
	return r
}

// echoTCP listens in the router namespace and answers every line with
// the connection's local (original destination) address.
func echoTCP(t *testing.T, ns *testenv.Namespace, addr string) *tproxy.TCPListener {
	t.Helper()
	ln := listenTCP(t, ns, addr)
	testenv.Serve(ln.Accept, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s %s\n", sc.Text(), c.LocalAddr())
		}
	})
	return ln
}

// listenTCP opens a TPROXY TCP listener in ns, closed when the test ends.
func listenTCP(t *testing.T, ns *testenv.Namespace, addr string) *tproxy.TCPListener {
	t.Helper()
	var ln *tproxy.TCPListener
	err := ns.Do(func() error {
		var err error
		ln, err = tproxy.ListenTCP(context.Background(), netip.MustParseAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// refused fails the test if a TCP connection from ns to dst succeeds
// within timeout; the message says what must not have happened.
func refused(t *testing.T, ns *testenv.Namespace, dst string, timeout time.Duration, format string, args ...any) {
	t.Helper()
	if c, err := ns.DialTCP(dst, timeout); err == nil {
		c.Close()
		t.Errorf(format, args...)
	}
}

// ask sends a line and returns the reply line.
func ask(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

// echoes reports whether a connection from the client to dst reaches an
// echoTCP listener that sees dst as its destination, within 2 s.
func echoes(topo *testenv.Topology, dst string) bool {
	c, err := topo.Client.DialTCP(dst, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	got, err := ask(c, "x")
	return err == nil && got == "x "+dst
}

func tcpIntercept(id, prefix string, port uint16, ln *tproxy.TCPListener) intercept.Intercept {
	return intercept.Intercept{
		ServiceID:  id,
		Protocols:  []intercept.Protocol{intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix(prefix)},
		Ports:      []intercept.PortRange{{Low: port, High: port}},
		TProxyPort: ln.Port(),
	}
}

func TestEndToEndTCP(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	ln4 := echoTCP(t, topo.Router, "127.0.0.1:0")
	ln6 := echoTCP(t, topo.Router, "[::1]:0")
	ctx := context.Background()
	if err := r.fw.Register(ctx, tcpIntercept("v4", "10.99.0.0/24", 8080, ln4)); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.Register(ctx, tcpIntercept("v6", "fd00:99::/64", 8443, ln6)); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"10.99.0.7:8080", "[fd00:99::7]:8443"} {
		t.Run(dst, func(t *testing.T) {
			c, err := topo.Client.DialTCP(dst, 5*time.Second)
			if err != nil {
				t.Fatalf("dial %s: %v", dst, err)
			}
			defer c.Close()
			// Several exchanges: every segment of the flow must arrive,
			// not only the first.
			for i := range 5 {
				got, err := ask(c, fmt.Sprintf("hello%d", i))
				if err != nil {
					t.Fatalf("exchange %d: %v", i, err)
				}
				if want := fmt.Sprintf("hello%d %s", i, dst); got != want {
					t.Fatalf("reply %q, want %q (listener must see the original destination)", got, want)
				}
			}
		})
	}
	t.Run("unintercepted port is not steered", func(t *testing.T) {
		refused(t, topo.Client, "10.99.0.7:8081", 2*time.Second, "connection to an unintercepted port succeeded")
	})
	st, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Steered == 0 || st.CacheHits == 0 {
		t.Errorf("stats %+v: want steered packets and cache hits", st)
	}
}

func TestEndToEndManyConcurrentConnections(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	if err := r.fw.Register(context.Background(), tcpIntercept("many", "10.98.0.0/16", 9000, ln)); err != nil {
		t.Fatal(err)
	}
	const n = 200
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Sockets must be created inside the client namespace; once open
	// they are used from any goroutine.
	err := topo.Client.Do(func() error {
		for i := range n {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("10.98.%d.%d:9000", i/200, 1+i%200), 10*time.Second)
			if err != nil {
				return fmt.Errorf("dial %d: %w", i, err)
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := ask(c, fmt.Sprintf("c%d", i))
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			if want := fmt.Sprintf("c%d %s", i, c.RemoteAddr()); got != want {
				errs <- fmt.Errorf("conn %d: reply %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEndToEndUnregisterWhileTrafficFlows(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	ctx := context.Background()
	if err := r.fw.Register(ctx, tcpIntercept("svc", "10.97.0.0/24", 7070, ln)); err != nil {
		t.Fatal(err)
	}
	c, err := topo.Client.DialTCP("10.97.0.1:7070", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Keep the connection busy while the service goes away.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := ask(c, fmt.Sprintf("m%d", i)); err != nil {
				done <- fmt.Errorf("exchange %d: %w", i, err)
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := r.fw.Unregister(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	refused(t, topo.Client, "10.97.0.1:7070", 2*time.Second, "a new connection was steered after Unregister")
	close(stop)
	if err := <-done; err != nil {
		t.Errorf("connection opened before Unregister broke: %v", err)
	}
	if got, err := ask(c, "after"); err != nil || got != "after 10.97.0.1:7070" {
		t.Errorf("established connection after Unregister: %q, %v", got, err)
	}
}

func TestEndToEndRestartAdoptsKeptDataplane(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	pin := pinPath()
	first := newRouter(t, topo, zfw.Options{PinPath: pin, KeepOnClose: true})
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	ctx := context.Background()
	ic := tcpIntercept("kept", "10.96.0.0/24", 6060, ln)
	if err := first.fw.Register(ctx, ic); err != nil {
		t.Fatal(err)
	}
	c, err := topo.Client.DialTCP("10.96.0.1:6060", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := ask(c, "before"); err != nil {
		t.Fatal(err)
	}
	if err := first.fw.Close(); err != nil {
		t.Fatal(err)
	}
	first.fw = nil

	// The dataplane keeps running with nobody owning it.
	if got, err := ask(c, "between"); err != nil || got != "between 10.96.0.1:6060" {
		t.Fatalf("connection while no process owns the dataplane: %q, %v", got, err)
	}

	second := newRouter(t, topo, zfw.Options{PinPath: pin})
	if u := second.fw.Usage(); !u.AdoptedDataplane || u.Rules != 1 {
		t.Fatalf("usage after restart = %+v, want the adopted rule", u)
	}
	got := second.fw.Intercepts()
	if len(got) != 1 || !got[0].Equal(ic) {
		t.Fatalf("intercepts after restart = %+v, want %+v", got, ic)
	}
	if got, err := ask(c, "after"); err != nil || got != "after 10.96.0.1:6060" {
		t.Errorf("connection after restart: %q, %v", got, err)
	}
	nc, err := topo.Client.DialTCP("10.96.0.2:6060", 5*time.Second)
	if err != nil {
		t.Fatalf("new connection after restart: %v", err)
	}
	defer nc.Close()
	if _, err := ask(nc, "new"); err != nil {
		t.Error(err)
	}
	// A second owner of the same pins is refused while this one lives.
	err = topo.Router.Do(func() error {
		fw, err := zfw.New(zfw.Options{PinPath: pin})
		if err == nil {
			fw.Close()
		}
		return err
	})
	if err == nil {
		t.Error("a second process took over a dataplane that is owned")
	}
}

// steersTCP registers a TCP intercept of prefix:port for a new echo
// listener and checks that one exchange with addr:port reaches it with its
// original destination.
func (r *router) steersTCP(id, prefix, addr string, port uint16) {
	t := r.t
	t.Helper()
	ln := echoTCP(t, r.topo.Router, "127.0.0.1:0")
	if err := r.fw.Register(context.Background(), tcpIntercept(id, prefix, port, ln)); err != nil {
		t.Fatal(err)
	}
	dst := net.JoinHostPort(addr, fmt.Sprint(port))
	c, err := r.topo.Client.DialTCP(dst, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := ask(c, "x"); err != nil || got != "x "+dst {
		t.Fatalf("reply %q, %v; want %q", got, err, "x "+dst)
	}
}

func TestEndToEndLegacyTCAttach(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{LegacyTC: true})
	r.steersTCP("legacy", "10.95.0.0/24", "10.95.0.9", 5050)
	if err := r.fw.Close(); err != nil {
		t.Fatal(err)
	}
	r.fw = nil
	for _, dir := range []string{"ingress", "egress"} {
		out, err := topo.Router.Exec(context.Background(), "tc", "filter", "show", "dev", topo.RouterClientIf, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 0 {
			t.Errorf("%s filter left after Close:\n%s", dir, out)
		}
	}
}

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

func TestNewFailsCleanly(t *testing.T) {
	ns := testenv.NewTestNamespace(t, "new")
	cases := []struct {
		name string
		opts zfw.Options
		says string
	}{
		{"missing interface", zfw.Options{Interfaces: []zfw.Interface{{Name: "nosuch0"}}}, "nosuch0"},
		{"pin folder off bpffs", zfw.Options{PinPath: t.TempDir() + "/zfw"}, "not on a bpf filesystem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.PinPath == "" {
				tc.opts.PinPath = pinPath()
			}
			err := ns.Do(func() error {
				fw, err := zfw.New(tc.opts)
				if err == nil {
					fw.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("New = %v, want an error saying %q", err, tc.says)
			}
			if _, serr := os.Stat(tc.opts.PinPath); !os.IsNotExist(serr) {
				t.Errorf("pin folder %s left behind (%v)", tc.opts.PinPath, serr)
			}
			out, _ := ns.Exec(context.Background(), "ip", "rule", "show")
			if strings.Contains(string(out), "fwmark") {
				t.Errorf("policy routing left behind:\n%s", out)
			}
		})
	}
}

// TestInterfaceAddressesFollowNetlink: the dataplane's idea of the host's
// own addresses follows address changes as they happen.
func TestInterfaceAddressesFollowNetlink(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true}}}})
	has := func(a netip.Addr) bool {
		got, err := r.fw.Addresses(topo.RouterClientIf)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g == a {
				return true
			}
		}
		return false
	}
	if !has(topo.RouterClientAddr4.Addr()) || !has(topo.RouterClientAddr6.Addr()) {
		t.Fatal("the interface's addresses are not known at attach")
	}
	extra := netip.MustParsePrefix("10.201.1.77/24")
	ip := func(args ...string) {
		t.Helper()
		if out, err := topo.Router.Exec(context.Background(), "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("addr", "add", extra.String(), "dev", topo.RouterClientIf)
	waitFor(t, "the added address is known", func() bool { return has(extra.Addr()) })

	// SSH to the new address is admitted by default on a default-deny
	// interface; to an address the router does not have, it is not.
	var ln net.Listener
	if err := topo.Router.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "0.0.0.0:22")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	testenv.Serve(ln.Accept, func(net.Conn) {})
	c, err := topo.Client.DialTCP("10.201.1.77:22", 5*time.Second)
	if err != nil {
		t.Fatalf("SSH to the router's new address: %v", err)
	}
	c.Close()
	refused(t, topo.Client, "10.201.1.1:80", 2*time.Second, "a port no rule allows was reachable on a default-deny interface")

	ip("addr", "del", extra.String(), "dev", topo.RouterClientIf)
	waitFor(t, "the removed address is forgotten", func() bool { return !has(extra.Addr()) })
}

// TestEndToEndHostFirewall: a host whose interface is default-deny
// reaches out (TCP and UDP, both families) and gets its replies, while
// nobody reaches in.
func TestEndToEndHostFirewall(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	var fw *zfw.Firewall
	err := topo.Client.Do(func() error {
		var err error
		fw, err = zfw.New(zfw.Options{
			PinPath:    pinPath(),
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
		if _, err := ask(c, fmt.Sprintf("in%d", i)); err != nil {
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
			PinPath: pinPath(),
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
		if _, err := ask(c, "hi"); err != nil {
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
		if got, err := ask(c, fmt.Sprintf("m%d", i)); err != nil || got != fmt.Sprintf("m%d 10.93.0.4:8080", i) {
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

// TestEndToEndSteerEvents: a verbose interface reports each steered
// connection.
func TestEndToEndSteerEvents(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: zfw.InterfaceSettings{Verbose: true}}}})
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	if err := r.fw.Register(context.Background(), tcpIntercept("ev", "10.92.0.0/24", 80, ln)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := r.fw.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := topo.Client.DialTCP("10.92.0.9:80", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind != zfw.EventSteer {
				continue
			}
			if ev.Dst.String() != "10.92.0.9:80" || ev.TProxyPort != ln.Port() || ev.Interface != topo.RouterClientIf {
				t.Errorf("steer event %+v", ev)
			}
			if !strings.Contains(ev.String(), "| tproxy ---> 127.0.0.1:") {
				t.Errorf("formatted: %s", ev)
			}
			return
		case <-timeout:
			t.Fatal("no steer event")
		}
	}
}

// TestEndToEndSYNFlood: a SYN flood from one namespace (bounded: 400
// SYNs) gets its source banned while another client's established
// session keeps passing data.
func TestEndToEndSYNFlood(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	ddos := zfw.InterfaceSettings{DDoSProtection: true}
	r := newRouter(t, topo, zfw.Options{
		Interfaces: []zfw.Interface{{Name: topo.RouterClientIf, InterfaceSettings: ddos}, {Name: topo.RouterServerIf, InterfaceSettings: ddos}},
		SYNFlood:   zfw.SYNFlood{SYNsPerSecond: 50, BanDuration: time.Hour},
	})
	echoTCP(t, topo.Router, "0.0.0.0:9999")
	// The legitimate client (the server namespace) connects first.
	legit, err := topo.Server.DialTCP(netip.AddrPortFrom(topo.RouterServerAddr4.Addr(), 9999).String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	if _, err := ask(legit, "before"); err != nil {
		t.Fatal(err)
	}

	// The flood: raw SYNs from the client namespace.
	var raw net.PacketConn
	if err := topo.Client.Do(func() error {
		var err error
		raw, err = net.ListenPacket("ip4:tcp", topo.ClientAddr4.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	dst := topo.RouterClientAddr4.Addr()
	for i := range 400 {
		frame := packet.Build(packet.Spec{Src: topo.ClientAddr4.Addr(), Dst: dst, Proto: packet.TCP, SrcPort: uint16(20000 + i), DstPort: 9999, TCPFlags: packet.SYN})
		tcpHeader := frame[14+20:]
		if _, err := raw.WriteTo(tcpHeader, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatalf("SYN %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		bans, err := r.fw.DDoS().Bans()
		if err != nil {
			t.Fatal(err)
		}
		if len(bans) == 1 && bans[0].Source == topo.ClientAddr4.Addr() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flooding source not banned: %+v", bans)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		if got, err := ask(legit, fmt.Sprintf("during%d", i)); err != nil || !strings.HasPrefix(got, fmt.Sprintf("during%d", i)) {
			t.Fatalf("established session during the flood: %q, %v", got, err)
		}
	}
	refused(t, topo.Client, netip.AddrPortFrom(dst, 9999).String(), time.Second, "the banned source could still connect")
	if st, _ := r.fw.Stats(); st.Banned == 0 {
		t.Errorf("stats %+v: want banned packets", st)
	}
}

// TestEndToEndANewConnectionOnATupleTheListenerHoldsInTimeWait: when the
// listener's side closes first it keeps the tuple in TIME_WAIT; a client
// that reuses its port for a new connection to the same intercepted
// address must still get through (the kernel resolves the old socket, as
// it does without interception), not be dropped for the minute the old
// socket lives.
func TestEndToEndANewConnectionOnATupleTheListenerHoldsInTimeWait(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	// A listener that answers and closes first: its side of every
	// connection ends in TIME_WAIT.
	listen := func(addr string) *tproxy.TCPListener {
		ln := listenTCP(t, topo.Router, addr)
		testenv.Serve(ln.Accept, func(c net.Conn) { fmt.Fprintf(c, "bye %s\n", c.LocalAddr()) })
		return ln
	}
	ln4, ln6 := listen("127.0.0.1:0"), listen("[::1]:0")
	if err := r.fw.Register(t.Context(), tcpIntercept("v4", "10.99.0.0/24", 8080, ln4)); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.Register(t.Context(), tcpIntercept("v6", "fd00:99::/64", 8443, ln6)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client netip.Addr
		dst    netip.AddrPort
		procfs string
	}{
		{topo.ClientAddr4.Addr(), netip.MustParseAddrPort("10.99.0.7:8080"), "tcp"},
		{topo.ClientAddr6.Addr(), netip.MustParseAddrPort("[fd00:99::7]:8443"), "tcp6"},
	} {
		t.Run(tc.dst.String(), func(t *testing.T) {
			before, err := r.fw.Stats()
			if err != nil {
				t.Fatal(err)
			}
			from := netip.AddrPortFrom(tc.client, 41000)
			hello := func() error {
				return topo.Client.Do(func() error {
					d := net.Dialer{
						LocalAddr: net.TCPAddrFromAddrPort(from),
						Timeout:   10 * time.Second,
						Control: func(_, _ string, rc syscall.RawConn) error {
							var serr error
							err := rc.Control(func(fd uintptr) {
								serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
							})
							return errors.Join(err, serr)
						},
					}
					c, err := d.Dial("tcp", tc.dst.String())
					if err != nil {
						return err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					r := bufio.NewReader(c)
					line, err := r.ReadString('\n')
					if want := fmt.Sprintf("bye %s\n", tc.dst); err != nil || line != want {
						return fmt.Errorf("reply %q, %v; want %q", line, err, want)
					}
					// Close only after the listener's FIN: if ours came
					// first, the listener would close passively and hold
					// no TIME_WAIT.
					if rest, err := io.ReadAll(r); err != nil || len(rest) > 0 {
						return fmt.Errorf("after the reply: %q, %v; want the listener's FIN", rest, err)
					}
					return nil
				})
			}
			if err := hello(); err != nil {
				t.Fatalf("first connection: %v", err)
			}
			// The listener's side of the tuple is in TIME_WAIT (state 06)
			// once the client's FIN has been acknowledged.
			waitFor(t, "the listener's side in TIME_WAIT", func() bool {
				return inTimeWait(t, topo.Router, tc.procfs, tc.dst, from)
			})
			if err := hello(); err != nil {
				t.Fatalf("second connection from the same port: %v", err)
			}
			after, err := r.fw.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if after.TupleInUse <= before.TupleInUse {
				t.Errorf("TupleInUse %d → %d: the second SYN was not left to the old socket", before.TupleInUse, after.TupleInUse)
			}
		})
	}
}

// The main goroutine keeps the process's main thread to itself, so that
// testenv's Do never runs on it. A test that reads a namespace's state
// through the wrong thread (as /proc/net would) then fails every time, not
// only when the scheduler happens to pick another thread.
func init() { runtime.LockOSThread() }

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inTimeWait tells whether ns has a TCP socket from local to remote in
// TIME_WAIT, read from its /proc/net table procfs ("tcp" or "tcp6").
func inTimeWait(t *testing.T, ns *testenv.Namespace, procfs string, local, remote netip.AddrPort) bool {
	t.Helper()
	table, err := ns.ReadProcNet(procfs)
	if err != nil {
		t.Fatal(err)
	}
	hexAddr := func(ap netip.AddrPort) string {
		// procfs prints each 32-bit word of the address in host order.
		b := ap.Addr().AsSlice()
		var s strings.Builder
		for i := 0; i < len(b); i += 4 {
			fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[i:i+4]))
		}
		return fmt.Sprintf("%s:%04X", s.String(), ap.Port())
	}
	want := hexAddr(local) + " " + hexAddr(remote) + " 06"
	return strings.Contains(string(table), want)
}
