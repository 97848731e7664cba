package zfw

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/testenv"
)

// A local source is a local route on lo while it is added, counted per
// prefix; a kept dataplane keeps its routes, and the next owner takes
// each as added once and removes them on Close.
func TestLocalSourcesAreCountedLocalRoutes(t *testing.T) {
	ns := testenv.NewTestNamespace(t, "src")
	pin := testenv.PinPath(t, "src")
	ctx := context.Background()
	open := func(keep bool) *Firewall {
		t.Helper()
		var fw *Firewall
		if err := ns.Do(func() error {
			var err error
			fw, err = New(Options{PinPath: pin, KeepOnClose: keep, MaxRules: 1024, MaxPrefixes: 1024})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fw
	}
	local := func(addr string) bool {
		t.Helper()
		// No route at all (the namespace has no other) is not local.
		out, err := ns.Exec(ctx, "ip", "route", "get", addr)
		return err == nil && strings.HasPrefix(string(out), "local ")
	}
	p4, p6 := netip.MustParsePrefix("10.8.0.0/24"), netip.MustParsePrefix("fd00:8::/64")

	fw := open(true)
	s := fw.LocalSources()
	for _, p := range []netip.Prefix{p4, p4, p6, netip.MustParsePrefix("10.8.0.5/24")} {
		if err := s.Add(ctx, p); err != nil {
			t.Fatalf("Add %s: %v", p, err)
		}
	}
	if got, _ := s.List(); !slices.Equal(got, []netip.Prefix{p4, p4, p4, p6}) {
		t.Errorf("List = %v", got)
	}
	if !local("10.8.0.200") || !local("fd00:8::200") || local("10.9.0.1") {
		t.Fatal("the local sources are not (only) what is local")
	}
	for range 2 {
		if err := s.Remove(ctx, p4); err != nil {
			t.Fatal(err)
		}
	}
	if !local("10.8.0.200") {
		t.Error("two Removes of a prefix added three times took it away")
	}
	for _, tc := range []struct {
		p    string
		want string
	}{
		{"0.0.0.0/0", "every address"},
		{"::/0", "every address"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped"},
	} {
		if err := s.Add(ctx, netip.MustParsePrefix(tc.p)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add %s: %v, want an error saying %q", tc.p, err, tc.want)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if !local("10.8.0.200") {
		t.Fatal("a kept dataplane's Close removed its local sources")
	}

	fw = open(false)
	t.Cleanup(func() { fw.Close() })
	s = fw.LocalSources()
	if got, _ := s.List(); !slices.Equal(got, []netip.Prefix{p4, p6}) {
		t.Errorf("the next owner's List = %v, want each kept source once", got)
	}
	if err := s.Remove(ctx, p6); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, p6); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove of a source not there: %v, want ErrNotFound", err)
	}
	if local("fd00:8::200") {
		t.Error("the removed source is still local")
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if local("10.8.0.200") {
		t.Error("Close left a local source")
	}
}
