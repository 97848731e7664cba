package zfw

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/tproxy"
)

// A TPROXY listener goes into listener_map when its rules are
// registered, or, opened after them, when the retry loop looks again; a
// closed one leaves the map by itself.
func TestListenersAreHandedOverWhenTheyOpen(t *testing.T) {
	// sock_diag answers where inet_diag is there; /proc/net elsewhere.
	for _, viaProc := range []bool{false, true} {
		t.Run(map[bool]string{false: "sock_diag", true: "/proc/net"}[viaProc], func(t *testing.T) {
			handsOver(t, viaProc)
		})
	}
}

func handsOver(t *testing.T, viaProc bool) {
	h := newHarness(t)
	h.f.mu.Lock()
	h.f.noDiag = viaProc
	h.f.mu.Unlock()
	ctx := context.Background()
	handed := func(port uint16) bool {
		var cookie uint64
		k := bpfobj.ZfwListenerKey{Port: port, Family: 4, Proto: 6}
		return h.f.dp.Objects().ListenerMap.Lookup(&k, &cookie) == nil
	}
	register := func(id string, port uint16) {
		t.Helper()
		err := h.f.Register(ctx, intercept.Intercept{
			ServiceID: id, Protocols: []intercept.Protocol{intercept.TCP},
			Addresses:  []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24")},
			Ports:      []intercept.PortRange{{Low: 80, High: 80}},
			TProxyPort: port,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	listen := func() *tproxy.TCPListener {
		t.Helper()
		ln, err := tproxy.ListenTCP(ctx, netip.MustParseAddrPort("127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}

	first := listen()
	defer first.Close()
	register("open", first.Port())
	if !handed(first.Port()) {
		t.Error("the listener open at Register is not in listener_map")
	}

	later := listen()
	port := later.Port()
	later.Close() // so that the port has no listener at Register
	register("later", port)
	if handed(port) {
		t.Fatal("a port without a listener is in listener_map")
	}
	ln, err := tproxy.ListenTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	if err != nil {
		t.Fatal(err)
	}
	// The retry loop finds it, within listenerRetry and a tick or two.
	deadline := time.Now().Add(listenerRetry + 2*time.Second)
	for !handed(port) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !handed(port) {
		t.Error("the listener opened after Register is not in listener_map after the retry")
	}
	ln.Close()
	deadline = time.Now().Add(5 * time.Second)
	for handed(port) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if handed(port) {
		t.Error("a closed listener stays in listener_map")
	}
}
