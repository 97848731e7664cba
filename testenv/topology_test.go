package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestTopologyForwardsTCP(t *testing.T) {
	tp := NewTestTopology(t)
	for _, fam := range []struct {
		name           string
		client, server netip.Prefix
	}{
		{"IPv4", tp.ClientAddr4, tp.ServerAddr4},
		{"IPv6", tp.ClientAddr6, tp.ServerAddr6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// The client and the server share no subnet and each has one
			// link, to the router: a connection between them is forwarded.
			if fam.client.Overlaps(fam.server) {
				t.Fatalf("client %s and server %s share a subnet", fam.client, fam.server)
			}
			srv := startEcho(t, tp.Server, fam.server.Addr(), "server")
			got, local, err := roundTrip(tp.Client, srv.addr, "hello "+fam.name)
			if err != nil {
				t.Fatalf("round trip to %s: %v", srv.addr, err)
			}
			if want := "server:hello " + fam.name; got != want {
				t.Fatalf("answer %q, want %q", got, want)
			}
			if local.Addr() != fam.client.Addr() {
				t.Errorf("client's source address %s, want %s", local.Addr(), fam.client.Addr())
			}
			select {
			case peer := <-srv.peers:
				if peer != local {
					t.Errorf("server saw peer %s, client connected from %s", peer, local)
				}
			case <-time.After(ioTimeout):
				t.Fatal("server saw no connection")
			}

			// With forwarding off at the router, the same connection fails;
			// back on, it works again.
			setRouterForwarding(t, tp, "0")
			if c, err := tp.Client.DialTCP(srv.addr.String(), time.Second); err == nil {
				c.Close()
				t.Fatalf("dial %s succeeded with forwarding off at the router", srv.addr)
			}
			setRouterForwarding(t, tp, "1")
			if _, _, err := roundTrip(tp.Client, srv.addr, "again"); err != nil {
				t.Fatalf("round trip with forwarding back on: %v", err)
			}
		})
	}
}

func setRouterForwarding(t *testing.T, tp *Topology, v string) {
	t.Helper()
	err := tp.Router.Do(func() error {
		if err := writeSysctl("net.ipv4.ip_forward", v); err != nil {
			return err
		}
		return writeSysctl("net.ipv6.conf.all.forwarding", v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTopologyConfiguration(t *testing.T) {
	tp := NewTestTopology(t)
	for _, e := range tp.ends() {
		if len(e.ifname) > unix.IFNAMSIZ-1 {
			t.Errorf("interface name %q is longer than %d", e.ifname, unix.IFNAMSIZ-1)
		}
		l, err := e.n.Netlink().LinkByName(e.ifname)
		if err != nil {
			t.Fatalf("%s in %s: %v", e.ifname, e.n.Name(), err)
		}
		if l.Type() != "veth" || l.Attrs().Flags&unix.IFF_UP == 0 {
			t.Errorf("%s in %s: type %s flags %v, want an up veth", e.ifname, e.n.Name(), l.Type(), l.Attrs().Flags)
		}
		// A dump the kernel says a change interrupted (an IPv6 address
		// settling) is asked again.
		addrs, err := e.n.Netlink().AddrList(l, netlink.FAMILY_ALL)
		for i := 0; i < 5 && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
			addrs, err = e.n.Netlink().AddrList(l, netlink.FAMILY_ALL)
		}
		if err != nil {
			t.Fatal(err)
		}
		var have []string
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Errorf("%s on %s is tentative", a.IPNet, e.ifname)
			}
			have = append(have, a.IPNet.String())
		}
		for _, want := range []netip.Prefix{e.addr4, e.addr6} {
			if !slices.Contains(have, want.String()) {
				t.Errorf("%s in %s has %v, want %s", e.ifname, e.n.Name(), have, want)
			}
		}
	}
	// The plan's ranges are private and unique-local only.
	for _, p := range []netip.Prefix{tp.ClientAddr4, tp.RouterClientAddr4, tp.RouterServerAddr4, tp.ServerAddr4} {
		if !netip.MustParsePrefix("10.200.0.0/13").Contains(p.Addr()) {
			t.Errorf("%s is outside 10.200.0.0/13", p)
		}
	}
	for _, p := range []netip.Prefix{tp.ClientAddr6, tp.RouterClientAddr6, tp.RouterServerAddr6, tp.ServerAddr6} {
		if !netip.MustParsePrefix("fd00::/8").Contains(p.Addr()) {
			t.Errorf("%s is outside fd00::/8", p)
		}
	}
	// Sysctls, read inside each namespace.
	for _, c := range []struct {
		n          *Namespace
		key, value string
	}{
		{tp.Router, "net.ipv4.ip_forward", "1"},
		{tp.Router, "net.ipv6.conf.all.forwarding", "1"},
		{tp.Client, "net.ipv4.ip_forward", "0"},
		{tp.Server, "net.ipv6.conf.all.forwarding", "0"},
		{tp.Client, "net.ipv6.conf." + tp.ClientIf + ".accept_ra", "0"},
		{tp.Server, "net.ipv6.conf." + tp.ServerIf + ".accept_dad", "0"},
	} {
		var got string
		err := c.n.Do(func() error {
			b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(c.key, ".", "/")))
			got = strings.TrimSpace(string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != c.value {
			t.Errorf("%s in %s = %s, want %s", c.key, c.n.Name(), got, c.value)
		}
	}
	// Default routes of the client and the server go to the router.
	for _, c := range []struct {
		n    *Namespace
		gw4  netip.Prefix
		gw6  netip.Prefix
		name string
	}{
		{tp.Client, tp.RouterClientAddr4, tp.RouterClientAddr6, "client"},
		{tp.Server, tp.RouterServerAddr4, tp.RouterServerAddr6, "server"},
	} {
		for _, gw := range []netip.Prefix{c.gw4, c.gw6} {
			dst := netip.MustParseAddr("10.250.0.1")
			if gw.Addr().Is6() {
				dst = netip.MustParseAddr("fd00:250::1")
			}
			routes, err := c.n.Netlink().RouteGet(dst.AsSlice())
			if err != nil {
				t.Fatalf("%s: route to %s: %v", c.name, dst, err)
			}
			if len(routes) == 0 || !routes[0].Gw.Equal(gw.Addr().AsSlice()) {
				t.Errorf("%s: route to %s is %v, want via %s", c.name, dst, routes, gw.Addr())
			}
		}
	}
	// The names are the topology's and are listed by `ip netns list`.
	out, err := tp.Client.Command(context.Background(), "true").Output()
	if err != nil {
		t.Fatalf("ip netns exec %s true: %v (%s)", tp.Client.Name(), err, out)
	}
	for _, n := range tp.Namespaces() {
		if !strings.HasPrefix(n.Name(), tp.ID+"-") || !strings.HasPrefix(tp.ID, TestPrefix) {
			t.Errorf("namespace %s: want prefix %s-", n.Name(), tp.ID)
		}
	}
}

func TestTwoTopologiesAtOnce(t *testing.T) {
	a, b := NewTestTopology(t), NewTestTopology(t)
	if a.ID == b.ID || a.ClientIf == b.ClientIf || a.Client.Name() == b.Client.Name() {
		t.Fatalf("topologies share names: %s %s, %s %s", a.ID, a.ClientIf, b.ID, b.ClientIf)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, tp := range []*Topology{a, b} {
		for _, dst := range []netip.Addr{tp.ServerAddr4.Addr(), tp.ServerAddr6.Addr()} {
			// Both servers listen on the same address; each client must
			// reach its own.
			srv := startEcho(t, tp.Server, dst, tp.ID)
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, _, err := roundTrip(tp.Client, srv.addr, "hi")
				if err != nil {
					errs <- fmt.Errorf("%s to %s: %w", tp.ID, srv.addr, err)
					return
				}
				if want := tp.ID + ":hi"; got != want {
					errs <- fmt.Errorf("%s to %s: answer %q, want %q", tp.ID, srv.addr, got, want)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTopologyCloseRemovesEverything(t *testing.T) {
	RequirePrivileged(t)
	tp, err := NewTopology(t.Context(), TestPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	for _, n := range tp.Namespaces() {
		if !exists(t, n.Path()) {
			t.Fatalf("%s missing", n.Path())
		}
	}
	out, err := hostCmd(t, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, tp.Router.Name()) {
		t.Errorf("ip netns list does not show %s:\n%s", tp.Router.Name(), out)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, n := range tp.Namespaces() {
		if exists(t, n.Path()) {
			t.Errorf("%s still exists after Close", n.Path())
		}
	}
	if got := netnsEntries(t, tp.ID); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The veths never existed in the host's namespace.
	links, err := hostCmd(t, "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tp.ends() {
		if strings.Contains(links, e.ifname) {
			t.Errorf("host has %s:\n%s", e.ifname, links)
		}
	}
}

func TestTopologyFailedCreationLeavesNothing(t *testing.T) {
	RequirePrivileged(t)
	before := ownEntries(t)

	// Learn the steps from a successful creation.
	var steps []string
	tp, err := newTopology(t.Context(), TestPrefix, func(s string) error {
		steps = append(steps, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if len(steps) < 5 {
		t.Fatalf("steps %v", steps)
	}

	injected := errors.New("injected failure")
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			tp, err := newTopology(t.Context(), TestPrefix, func(s string) error {
				if s == step {
					return injected
				}
				return nil
			})
			if err == nil {
				tp.Close()
				t.Fatal("creation succeeded")
			}
			if !errors.Is(err, injected) || !strings.Contains(err.Error(), ": "+step+": ") {
				t.Errorf("error %q, want the injected failure at %s", err, step)
			}
			if tp != nil {
				t.Errorf("got a topology with the error")
			}
			if got := ownEntries(t); !slices.Equal(got, before) {
				t.Errorf("namespaces %v after the failure, want %v", got, before)
			}
		})
	}

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := NewTopology(ctx, TestPrefix); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		if got := ownEntries(t); !slices.Equal(got, before) {
			t.Errorf("namespaces %v, want %v", got, before)
		}
	})

	t.Run("bad prefix", func(t *testing.T) {
		for _, prefix := range []string{"", "bad/prefix-", "with space-", strings.Repeat("p", MaxNameLen)} {
			if _, err := NewTopology(t.Context(), prefix); err == nil {
				t.Errorf("prefix %q: no error", prefix)
			} else if !strings.HasPrefix(err.Error(), "testenv: ") {
				t.Errorf("prefix %q: error %q lacks the package prefix", prefix, err)
			}
		}
		if got := ownEntries(t); !slices.Equal(got, before) {
			t.Errorf("namespaces %v, want %v", got, before)
		}
	})
}
