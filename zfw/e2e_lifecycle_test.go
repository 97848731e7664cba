package zfw_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/testenv"
	"github.com/zfw-go/zfw/zfw"
)

func TestEndToEndRestartAdoptsKeptDataplane(t *testing.T) {
	topo := testenv.NewTestTopology(t)
	pin := pinPath(t)
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
	if _, err := testenv.AskLine(c, "before"); err != nil {
		t.Fatal(err)
	}
	if err := first.fw.Close(); err != nil {
		t.Fatal(err)
	}
	first.fw = nil

	// The dataplane keeps running with nobody owning it.
	if got, err := testenv.AskLine(c, "between"); err != nil || got != "between 10.96.0.1:6060" {
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
	if got, err := testenv.AskLine(c, "after"); err != nil || got != "after 10.96.0.1:6060" {
		t.Errorf("connection after restart: %q, %v", got, err)
	}
	nc, err := topo.Client.DialTCP("10.96.0.2:6060", 5*time.Second)
	if err != nil {
		t.Fatalf("new connection after restart: %v", err)
	}
	defer nc.Close()
	if _, err := testenv.AskLine(nc, "new"); err != nil {
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
	if got, err := testenv.AskLine(c, "x"); err != nil || got != "x "+dst {
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
				tc.opts.PinPath = pinPath(t)
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
	testenv.WaitFor(t, 10*time.Second, "the added address is known", func() bool { return has(extra.Addr()) })

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
	testenv.WaitFor(t, 10*time.Second, "the removed address is forgotten", func() bool { return !has(extra.Addr()) })
}
