package control

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
)

// The operations through a socket against a Firewall on kernel maps.
func TestSocketOnKernelDataplane(t *testing.T) {
	fw := kernelFirewall(t)
	c, _ := serve(t, fw)
	ctx := context.Background()

	if ch, err := c.Insert(ctx, rule(4000, "svcA")); err != nil || ch != Added {
		t.Fatalf("insert: %q, %v", ch, err)
	}
	if ch, err := c.Insert(ctx, rule(4000, "svcA")); err != nil || ch != Unchanged {
		t.Fatalf("insert again: %q, %v", ch, err)
	}
	udp := rule(4001, "svcA")
	udp.Protocol = intercept.UDP
	udp.Destination = netip.MustParsePrefix("fd00:1::/64")
	udp.Source = netip.Prefix{}
	if ch, err := c.Insert(ctx, udp); err != nil || ch != Added {
		t.Fatalf("insert udp v6: %q, %v", ch, err)
	}
	want := []string{
		`tproxy tcp 10.20.0.0/24 443 port 4000 sid "svcA" on all`,
		`tproxy udp fd00:1::/64 443 port 4001 sid "svcA" on all`,
	}
	if got := listing(t, c); !slices.Equal(got, want) {
		t.Fatalf("rules %v, want %v", got, want)
	}
	l, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Usage.Rules != 2 || l.Usage.Prefixes4 != 1 || l.Usage.Prefixes6 != 1 || l.Usage.MaxRules != 1024 || l.Usage.InMemory {
		t.Errorf("usage %+v", l.Usage)
	}
	if ch, err := c.Delete(ctx, rule(0, "").Match); err != nil || ch != Removed {
		t.Fatalf("delete: %q, %v", ch, err)
	}
	if _, err := c.Delete(ctx, rule(0, "").Match); !errors.Is(err, zfw.ErrNotFound) {
		t.Fatalf("delete again: %v, want ErrNotFound", err)
	}
	if err := c.Flush(ctx, BothDirections); err != nil {
		t.Fatal(err)
	}
	if u := fw.Usage(); u.Rules != 0 || u.Prefixes6 != 0 {
		t.Errorf("usage after flush %+v", u)
	}
}
