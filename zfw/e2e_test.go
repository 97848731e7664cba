package zfw_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

// The end-to-end tests run the dataplane on a client—router—server
// topology with real sockets, one file per feature (e2e_tcp, e2e_udp,
// e2e_lifecycle, e2e_firewall, e2e_masquerade, e2e_events, ...); this file
// holds what they share.

// router is a Firewall attached to the router's client-facing interface,
// with TPROXY listeners opened in the router namespace.
type router struct {
	t    *testing.T
	topo *testenv.Topology
	pin  string
	fw   *zfw.Firewall
}

func pinPath(tb testing.TB) string { return testenv.PinPath(tb, "e2e") }

func newRouter(t *testing.T, topo *testenv.Topology, opts zfw.Options) *router {
	t.Helper()
	r := &router{t: t, topo: topo, pin: opts.PinPath}
	if r.pin == "" {
		r.pin = pinPath(t)
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

// echoes reports whether a connection from the client to dst reaches an
// echoTCP listener that sees dst as its destination, within 2 s.
func echoes(topo *testenv.Topology, dst string) bool {
	c, err := topo.Client.DialTCP(dst, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	got, err := testenv.AskLine(c, "x")
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

// The main goroutine keeps the process's main thread to itself, so that
// testenv's Do never runs on it. A test that reads a namespace's state
// through the wrong thread (as /proc/net would) then fails every time, not
// only when the scheduler happens to pick another thread.
func init() { runtime.LockOSThread() }
