package zfw_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

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
	pin := pinPath()
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
	reaches := func() bool {
		c, err := topo.Client.DialTCP(dst, 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		got, err := ask(c, "x")
		return err == nil && got == "x "+dst
	}

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
