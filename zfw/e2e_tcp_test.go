package zfw_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/tproxy"
	"github.com/zfw-go/zfw/zfw"
)

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
				got, err := testenv.AskLine(c, fmt.Sprintf("hello%d", i))
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
			got, err := testenv.AskLine(c, fmt.Sprintf("c%d", i))
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
			if _, err := testenv.AskLine(c, fmt.Sprintf("m%d", i)); err != nil {
				done <- fmt.Errorf("exchange %d: %w", i, err)
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	before, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fw.Unregister(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	// A route change voids the input route the kernel cached in each
	// socket (early demux delivers an established segment by it,
	// marked or not), so from here on the connection's segments reach
	// its socket only if the program still marks them.
	_, dst, _ := net.ParseCIDR("198.18.97.0/24")
	bump := &netlink.Route{Dst: dst, Type: unix.RTN_BLACKHOLE}
	if err := topo.Router.Netlink().RouteAdd(bump); err != nil {
		t.Fatalf("add a route in the router's namespace: %v", err)
	}
	if err := topo.Router.Netlink().RouteDel(bump); err != nil {
		t.Fatalf("delete the route: %v", err)
	}
	refused(t, topo.Client, "10.97.0.1:7070", 2*time.Second, "a new connection was steered after Unregister")
	close(stop)
	if err := <-done; err != nil {
		t.Errorf("connection opened before Unregister broke: %v", err)
	}
	if got, err := testenv.AskLine(c, "after"); err != nil || got != "after 10.97.0.1:7070" {
		t.Errorf("established connection after Unregister: %q, %v", got, err)
	}
	after, err := r.fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if after.KeptSteering == before.KeptSteering {
		t.Errorf("KeptSteering stayed %d: the connection's segments were not kept by its socket", after.KeptSteering)
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
			testenv.WaitFor(t, 10*time.Second, "the listener's side in TIME_WAIT", func() bool {
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

// inTimeWait tells whether ns has a TCP socket from local to remote in
// TIME_WAIT, read from its /proc/net table procfs ("tcp" or "tcp6").
func inTimeWait(t *testing.T, ns *testenv.Namespace, procfs string, local, remote netip.AddrPort) bool {
	t.Helper()
	table, err := ns.ReadProcNet(procfs)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.InTimeWait(table, local, remote)
}
