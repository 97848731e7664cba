package zfw

import (
	"context"
	"net"
	"net/netip"
	"strings"
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

// Asked about many ports (the retry of every port without a listener),
// the search lists the namespace's sockets once per family and protocol
// instead of looking each port up; it finds the same listeners: TCP
// listening and UDP unconnected on the loopback addresses, and nothing
// else on those ports.
func TestListenerSearchFindsTheSameSocketsByListingAsByLookingUp(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	want := make(map[bpfobj.ZfwListenerKey]bool)
	keys := make(map[bpfobj.ZfwListenerKey]bool)
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		tl, err := tproxy.ListenTCP(ctx, netip.MustParseAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer tl.Close()
		ul, err := tproxy.ListenUDP(ctx, netip.MustParseAddrPort(addr), tproxy.UDPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ul.Close()
		family := uint8(4)
		if strings.HasPrefix(addr, "[") {
			family = 6
		}
		for _, k := range []bpfobj.ZfwListenerKey{
			{Port: tl.Port(), Family: family, Proto: 6},
			{Port: ul.Port(), Family: family, Proto: 17},
		} {
			want[k], keys[k] = true, true
		}
		// Asked about, nothing there: the other protocol on each port.
		keys[bpfobj.ZfwListenerKey{Port: tl.Port(), Family: family, Proto: 17}] = false
		keys[bpfobj.ZfwListenerKey{Port: ul.Port(), Family: family, Proto: 6}] = false
	}
	// A listener on another loopback address is not a TPROXY listener.
	conn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys[bpfobj.ZfwListenerKey{Port: uint16(conn.Addr().(*net.TCPAddr).Port), Family: 4, Proto: 6}] = false
	for p := uint16(1); len(keys) <= lookupsAtMost; p++ {
		keys[bpfobj.ZfwListenerKey{Port: p, Family: 4, Proto: 6}] = false
	}

	h.f.mu.Lock()
	listed := h.f.socketsFor(keys)
	lookedUp := make(map[string]candidate)
	for k := range keys {
		for inode, c := range h.f.socketsFor(map[bpfobj.ZfwListenerKey]bool{k: true}) {
			lookedUp[inode] = c
		}
	}
	h.f.mu.Unlock()

	for name, found := range map[string]map[string]candidate{"listed": listed, "looked up": lookedUp} {
		got := make(map[bpfobj.ZfwListenerKey]bool)
		for _, c := range found {
			if !c.rootOrOurs {
				t.Errorf("%s: %v: not ours", name, c.key)
			}
			got[c.key] = true
		}
		for k := range keys {
			if got[k] != want[k] {
				t.Errorf("%s: %+v found %v, want %v", name, k, got[k], want[k])
			}
		}
	}
	if len(listed) != len(lookedUp) {
		t.Errorf("listed %d sockets, looked up %d", len(listed), len(lookedUp))
	}
	for inode, c := range listed {
		if lookedUp[inode] != c {
			t.Errorf("%s: listed as %+v, looked up as %+v", inode, c, lookedUp[inode])
		}
	}
}

// The retry forgets a port no rule steers to any more, and walks the
// ports missed only once the first of them is due.
func TestListenerRetryForgetsPortsNoRuleUses(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ic := intercept.Intercept{
		ServiceID: "gone", Protocols: []intercept.Protocol{intercept.TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.97.1.0/24")},
		Ports:      []intercept.PortRange{{Low: 80, High: 80}},
		TProxyPort: 1, // no listener here
	}
	if err := h.f.Register(ctx, ic); err != nil {
		t.Fatal(err)
	}
	missed := func() int {
		h.f.mu.Lock()
		defer h.f.mu.Unlock()
		return len(h.f.listenerMissed)
	}
	if missed() == 0 {
		t.Fatal("the port without a listener is not left to the retry")
	}
	h.f.mu.Lock()
	due := h.f.nextRetry
	h.f.mu.Unlock()
	if due.IsZero() || time.Until(due) > listenerRetry {
		t.Errorf("next retry at %v, want within %v", due, listenerRetry)
	}
	if err := h.f.Unregister(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	h.f.mu.Lock()
	h.f.nextRetry = time.Time{} // due now
	h.f.mu.Unlock()
	h.f.retryHandOver()
	if n := missed(); n != 0 {
		t.Errorf("%d ports left to the retry after their rules went", n)
	}
}
