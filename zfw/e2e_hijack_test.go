package zfw_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

// While a tunneler is down and its rules stay pinned, another process
// that binds its listener's port receives none of its intercepted flows,
// even with a transparent socket (a plain one would not complete a
// connection to another host's address anyway): they are dropped and
// counted; once the tunneler is back with its own listener, they reach it
// again.
func TestEndToEndInterceptsReachOnlyTheTunnelersOwnListeners(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	pin := pinPath(t)
	t.Cleanup(func() { os.RemoveAll(pin) })
	start := func() *zfw.Firewall {
		t.Helper()
		var fw *zfw.Firewall
		if err := topo.Router.Do(func() error {
			var err error
			fw, err = zfw.New(zfw.Options{PinPath: pin, KeepOnClose: true, Interfaces: []zfw.Interface{{Name: topo.RouterClientIf}}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fw
	}
	const dst = "10.96.0.7:8080"
	reaches := func() bool { return echoes(topo, dst) }

	fw := start()
	ln := echoTCP(t, topo.Router, "127.0.0.1:0")
	port := ln.Port()
	if err := fw.Register(context.Background(), tcpIntercept("svc", "10.96.0.0/24", 8080, ln)); err != nil {
		t.Fatal(err)
	}
	if !reaches() {
		t.Fatal("the tunneler's own listener does not receive its intercept")
	}

	// The tunneler goes down, keeping its dataplane; another process takes
	// the port.
	ln.Close()
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	holdListenerElsewhere(t, topo.Router, fmt.Sprintf("127.0.0.1:%d", port))
	for i := range 3 {
		if c, err := topo.Client.DialTCP(dst, 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("attempt %d: an intercepted connection was answered by the other process's socket", i)
		}
	}

	// Back, with a listener of its own (the old port is taken).
	fw = start()
	defer fw.Close()
	st, err := fw.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.NoListener == 0 {
		t.Errorf("the flows while the tunneler was down were not counted as without a listener: %+v", st)
	}
	ln = echoTCP(t, topo.Router, "127.0.0.1:0")
	if err := fw.Register(context.Background(), tcpIntercept("svc", "10.96.0.0/24", 8080, ln)); err != nil {
		t.Fatal(err)
	}
	if !reaches() {
		t.Error("the tunneler's new listener does not receive its intercept")
	}
}

// The same for UDP, against a plain socket of user nobody's on the port:
// while the tunneler is down, not one datagram reaches it.
func TestEndToEndUDPInterceptsReachOnlyTheTunnelersOwnListeners(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	r := newRouter(t, topo, zfw.Options{})
	ln := echoUDP(t, topo.Router, "127.0.0.1:0")
	port := ln.Port()
	ic := intercept.Intercept{
		ServiceID: "svc", Protocols: []intercept.Protocol{intercept.UDP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.96.0.0/24")},
		Ports:      []intercept.PortRange{{Low: 5353, High: 5353}},
		TProxyPort: port,
	}
	if err := r.fw.Register(context.Background(), ic); err != nil {
		t.Fatal(err)
	}
	const dst = "10.96.0.7:5353"
	if got, err := udpAsk(topo.Client, dst, "hi"); err != nil || !strings.HasPrefix(got, "hi "+dst) {
		t.Fatalf("the tunneler's own listener: %q, %v", got, err)
	}
	ln.Close() // the tunneler's listener goes; its rules stay
	got := helper(t, topo.Router, fmt.Sprintf("%s=127.0.0.1:%d", envListenUDP, port))
	for range 2 {
		udpAsk(topo.Client, dst, "for the tunneler") // no answer expected
	}
	select {
	case line := <-got:
		t.Fatalf("user nobody's socket on the port received an intercepted datagram (%q)", line)
	case <-time.After(time.Second):
	}
	if st, err := r.fw.Stats(); err != nil || st.NoListener < 2 {
		t.Errorf("stats %+v, %v: want the datagrams counted as without a listener", st, err)
	}
}
