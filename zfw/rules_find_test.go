package zfw_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

func steer(dst, src string, low, high, port uint16, sid string) zfw.Rule {
	r := zfw.Rule{
		Action: zfw.TProxy, Protocol: intercept.TCP,
		Destination: netip.MustParsePrefix(dst),
		Ports:       intercept.PortRange{Low: low, High: high},
		TProxyPort:  port, ServiceID: sid,
	}
	if src != "" {
		r.Source = netip.MustParsePrefix(src)
	}
	return r
}

func TestRulesFindMatchesOnlyTheSameMatch(t *testing.T) {
	fw := zfwtest.New(t).Firewall
	ctx := context.Background()
	want, err := fw.Rules().Add(ctx, steer("10.1.0.0/16", "0.0.0.0/0", 80, 90, 4000, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	// Neighbours that differ in one part of the match.
	for _, r := range []zfw.Rule{
		steer("10.1.0.0/24", "", 80, 90, 4000, "svc"),
		steer("10.1.0.0/16", "192.168.0.0/16", 80, 90, 4000, "svc"),
		steer("10.1.0.0/16", "", 80, 91, 4000, "svc"),
		steer("10.1.0.0/16", "", 81, 90, 4000, "svc"),
	} {
		if _, err := fw.Rules().Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	udp := steer("10.1.0.0/16", "", 80, 90, 4000, "svc")
	udp.Protocol = intercept.UDP
	if _, err := fw.Rules().Add(ctx, udp); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		query zfw.Rule
		want  []uint32
	}{
		{"exact", steer("10.1.0.0/16", "0.0.0.0/0", 80, 90, 4000, "svc"), []uint32{want}},
		{"zero source is any source", steer("10.1.0.0/16", "", 80, 90, 4000, "svc"), []uint32{want}},
		{"unmasked destination", steer("10.1.2.3/16", "", 80, 90, 4000, "svc"), []uint32{want}},
		{"action, listener and service ignored", steer("10.1.0.0/16", "", 80, 90, 1, "other"), []uint32{want}},
		{"other prefix", steer("10.2.0.0/16", "", 80, 90, 4000, "svc"), nil},
		{"other ports", steer("10.1.0.0/16", "", 80, 85, 4000, "svc"), nil},
		{"bad protocol", zfw.Rule{Protocol: "icmp", Destination: netip.MustParsePrefix("10.1.0.0/16")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint32
			for _, ri := range fw.Rules().Find(tc.query) {
				got = append(got, ri.ID)
			}
			if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
				t.Errorf("Find = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRulesFindSkipsIntercepts(t *testing.T) {
	fw := zfwtest.New(t).Firewall
	ctx := context.Background()
	ic := intercept.Intercept{
		ServiceID: "svc", Protocols: []intercept.Protocol{intercept.TCP},
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/24")},
		Ports:     []intercept.PortRange{{Low: 80, High: 80}}, TProxyPort: 4000,
	}
	if err := fw.Register(ctx, ic); err != nil {
		t.Fatal(err)
	}
	if got := fw.Rules().Find(steer("10.5.0.0/24", "", 80, 80, 4000, "svc")); len(got) != 0 {
		t.Errorf("Find returned the intercept's rule: %+v", got)
	}
}

func TestRulesReplaceSwapsTheRule(t *testing.T) {
	fw := zfwtest.New(t).Firewall
	ctx := context.Background()
	old, err := fw.Rules().Add(ctx, steer("10.1.0.0/16", "", 80, 90, 4000, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := fw.Rules().Replace(ctx, old, steer("10.1.0.0/16", "", 80, 90, 5000, "svc2"))
	if err != nil {
		t.Fatal(err)
	}
	list := fw.Rules().List()
	if len(list) != 1 || list[0].ID != id || list[0].TProxyPort != 5000 || list[0].ServiceID != "svc2" {
		t.Fatalf("rules after Replace = %+v, want only the new rule", list)
	}
	if _, err := fw.Rules().Replace(ctx, old, steer("10.1.0.0/16", "", 80, 90, 5000, "svc2")); !errors.Is(err, zfw.ErrNotFound) {
		t.Errorf("Replace of a gone rule: %v, want ErrNotFound", err)
	}
	// An invalid replacement leaves the rule in place.
	if _, err := fw.Rules().Replace(ctx, id, steer("10.1.0.0/16", "", 90, 80, 5000, "svc2")); err == nil {
		t.Error("Replace accepted low port > high port")
	}
	if list := fw.Rules().List(); len(list) != 1 || list[0].ID != id {
		t.Errorf("rules after a failed Replace = %+v", list)
	}
}
