package zfwtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

func svc(id string, port uint16, addrs ...string) intercept.Intercept {
	ic := intercept.Intercept{
		ServiceID:  id,
		Protocols:  []intercept.Protocol{intercept.TCP},
		Ports:      []intercept.PortRange{{Low: 80, High: 80}},
		TProxyPort: port,
	}
	for _, a := range addrs {
		ic.Addresses = append(ic.Addresses, netip.MustParsePrefix(a))
	}
	return ic
}

func TestRegisterSteersMatchingTraffic(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	ctx := context.Background()
	if err := fw.Register(ctx, svc("web", 7000, "10.9.0.0/24")); err != nil {
		t.Fatal(err)
	}
	v := fw.Verdict(zfwtest.TCP("192.168.1.5:40000", "10.9.0.7:80", "eth0"))
	if v.Action != zfw.TProxy || v.ServiceID != "web" || v.TProxyPort != 7000 {
		t.Errorf("verdict = %+v, want tproxy to web:7000", v)
	}
	if v := fw.Verdict(zfwtest.TCP("192.168.1.5:40000", "10.9.1.7:80", "eth0")); v.Action != zfw.Pass || v.RuleID != 0 {
		t.Errorf("outside the prefix: %+v, want pass with no rule", v)
	}
	if err := fw.Unregister(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if v := fw.Verdict(zfwtest.TCP("192.168.1.5:40000", "10.9.0.7:80", "eth0")); v.Action != zfw.Pass {
		t.Errorf("after unregister: %+v, want pass", v)
	}
	if u := fw.Usage(); u.Rules != 0 || u.Prefixes4 != 0 || u.Services != 0 {
		t.Errorf("usage after unregister = %+v, want empty", u)
	}
}

func TestOverlappingServicesBothWork(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	ctx := context.Background()
	wide := svc("wide", 7000, "10.0.0.0/8")
	wide.Ports = []intercept.PortRange{{Low: 1, High: 65535}}
	if err := fw.Register(ctx, wide); err != nil {
		t.Fatal(err)
	}
	if err := fw.Register(ctx, svc("narrow", 7001, "10.9.0.5/32")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dst  string
		want string
	}{
		{"10.9.0.5:80", "narrow"},
		{"10.9.0.5:443", "wide"},
		{"10.1.2.3:80", "wide"},
	}
	for _, c := range cases {
		if v := fw.Verdict(zfwtest.TCP("192.168.1.5:40000", c.dst, "")); v.ServiceID != c.want {
			t.Errorf("%s: service %q, want %q", c.dst, v.ServiceID, c.want)
		}
	}
}

func TestRegisterValidationErrorsNameTheField(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	base := svc("s1", 7000, "10.9.0.0/24")
	cases := []struct {
		name   string
		mutate func(*intercept.Intercept)
		field  string
	}{
		{"empty service id", func(ic *intercept.Intercept) { ic.ServiceID = "" }, "service id"},
		{"service id too long", func(ic *intercept.Intercept) { ic.ServiceID = strings.Repeat("x", 33) }, "service id"},
		{"unknown protocol", func(ic *intercept.Intercept) { ic.Protocols = []intercept.Protocol{"sctp"} }, "protocols[0]"},
		{"no addresses", func(ic *intercept.Intercept) { ic.Addresses = nil }, "addresses"},
		{"bad prefix", func(ic *intercept.Intercept) { ic.Addresses = []netip.Prefix{{}} }, "addresses[0]"},
		{"low above high", func(ic *intercept.Intercept) { ic.Ports = []intercept.PortRange{{Low: 90, High: 80}} }, "ports[0]"},
		{"port 0", func(ic *intercept.Intercept) { ic.Ports = []intercept.PortRange{{Low: 0, High: 80}} }, "ports[0]"},
		{"no tproxy port", func(ic *intercept.Intercept) { ic.TProxyPort = 0 }, "tproxy port"},
		{"unknown interface", func(ic *intercept.Intercept) { ic.Interfaces = []string{"nosuch0"} }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := base
			tc.mutate(&ic)
			err := fw.Register(context.Background(), ic)
			if err == nil {
				t.Fatal("Register succeeded")
			}
			var fe *intercept.FieldError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Errorf("error %q: want a FieldError on %q", err, tc.field)
			}
			if u := fw.Usage(); u.Rules != 0 {
				t.Errorf("failed Register left %d rules", u.Rules)
			}
		})
	}
}

func TestRegisterIsAllOrNothing(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	ctx := context.Background()
	if err := fw.Register(ctx, svc("keep", 7000, "10.9.0.0/24")); err != nil {
		t.Fatal(err)
	}
	before := fw.Rules().List()

	// 200 port ranges under one prefix exceed the per-prefix limit.
	big := svc("big", 7001, "10.8.0.0/24", "10.7.0.0/24")
	big.Ports = nil
	for i := range 200 {
		big.Ports = append(big.Ports, intercept.PortRange{Low: uint16(1000 + i), High: uint16(1000 + i)})
	}
	err := fw.Register(ctx, big)
	var le *zfw.LimitError
	if !errors.As(err, &le) || le.Max != policy.MaxRangesPerPrefix {
		t.Fatalf("err = %v, want a LimitError on rules per prefix", err)
	}
	if !strings.Contains(err.Error(), "128") {
		t.Errorf("error %q does not name the limit", err)
	}
	after := fw.Rules().List()
	if len(after) != len(before) {
		t.Fatalf("rules %d -> %d after a failed Register", len(before), len(after))
	}
	if v := fw.Verdict(zfwtest.TCP("192.168.1.5:1", "10.7.0.1:1000", "")); v.Action != zfw.Pass {
		t.Errorf("half-applied service steers: %+v", v)
	}
}

func TestReRegisterReplacesTheIntercept(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	ctx := context.Background()
	if err := fw.Register(ctx, svc("s", 7000, "10.9.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := fw.Register(ctx, svc("s", 7000, "10.8.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.9.0.1:80", "")); v.Action != zfw.Pass {
		t.Errorf("old address still steered: %+v", v)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.8.0.1:80", "")); v.ServiceID != "s" {
		t.Errorf("new address not steered: %+v", v)
	}
	if n := len(fw.Rules().List()); n != 1 {
		t.Errorf("%d rules, want 1", n)
	}
}

func TestSyncAppliesOnlyTheDifference(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
	ctx := context.Background()
	a, b, c := svc("a", 7000, "10.1.0.0/24"), svc("b", 7001, "10.2.0.0/24"), svc("c", 7002, "10.3.0.0/24")
	if err := fw.Sync(ctx, []intercept.Intercept{a, b}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint32{}
	for _, r := range fw.Rules().List() {
		ids[r.ServiceID] = r.ID
	}
	gen := fw.Usage().Generation
	// Same set, reordered: nothing to do.
	if err := fw.Sync(ctx, []intercept.Intercept{b, a}); err != nil {
		t.Fatal(err)
	}
	if g := fw.Usage().Generation; g != gen {
		t.Errorf("unchanged Sync wrote the maps (generation %d -> %d)", gen, g)
	}
	b2 := b
	b2.Ports = []intercept.PortRange{{Low: 81, High: 81}}
	if err := fw.Sync(ctx, []intercept.Intercept{a, b2, c}); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, r := range fw.Rules().List() {
		got[r.ServiceID] = r.ID
	}
	if got["a"] != ids["a"] {
		t.Errorf("unchanged service a was rewritten (rule %d -> %d)", ids["a"], got["a"])
	}
	if got["b"] == ids["b"] || got["c"] == 0 || len(got) != 3 {
		t.Errorf("rules after sync: %v", got)
	}
	if err := fw.Sync(ctx, []intercept.Intercept{c}); err != nil {
		t.Fatal(err)
	}
	if n := len(fw.Intercepts()); n != 1 {
		t.Errorf("%d intercepts after removing two, want 1", n)
	}
	if err := fw.Sync(ctx, []intercept.Intercept{c, c}); !errors.Is(err, zfw.ErrConflict) {
		t.Errorf("duplicate ids: err = %v, want ErrConflict", err)
	}
}

func TestUnregisterUnknownService(t *testing.T) {
	fw := zfwtest.New(t)
	if err := fw.Unregister(context.Background(), "nope"); !errors.Is(err, zfw.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestServicesSharingAListenerPort(t *testing.T) {
	fw := zfwtest.New(t)
	ctx := context.Background()
	if err := fw.Register(ctx, svc("b", 7000, "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := fw.Register(ctx, svc("a", 7000, "10.2.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.2.0.1:80", "")); v.ServiceID != "a" || v.TProxyPort != 7000 {
		t.Errorf("verdict %+v, want a on 7000", v)
	}
	if err := fw.Unregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.2.0.1:80", "")); v.ServiceID != "a" || v.TProxyPort != 7000 {
		t.Errorf("after b left: verdict %+v, want a on 7000", v)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.1.0.1:80", "")); v.TProxyPort != 0 {
		t.Errorf("after b left: its address is still steered: %+v", v)
	}
}

func TestRulesAPI(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"}, zfw.Interface{Name: "eth1"})
	ctx := context.Background()
	allow, err := fw.Rules().Add(ctx, zfw.Rule{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("0.0.0.0/0"), Ports: intercept.PortRange{Low: 1, High: 65535}})
	if err != nil {
		t.Fatal(err)
	}
	deny, err := fw.Rules().Add(ctx, zfw.Rule{Action: zfw.Deny, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.9.0.5/32"), Ports: intercept.PortRange{Low: 22, High: 22}, Interfaces: []string{"eth1"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.9.0.5:22", "eth1")); v.Action != zfw.Deny || v.RuleID != deny {
		t.Errorf("eth1: %+v, want deny by rule %d", v, deny)
	}
	if v := fw.Verdict(zfwtest.TCP("1.2.3.4:1", "10.9.0.5:22", "eth0")); v.Action != zfw.Pass || v.RuleID != allow {
		t.Errorf("eth0: %+v, want pass by rule %d", v, allow)
	}
	if err := fw.Rules().Delete(ctx, deny); err != nil {
		t.Fatal(err)
	}
	if err := fw.Rules().Delete(ctx, deny); !errors.Is(err, zfw.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	bad := []zfw.Rule{
		{Action: zfw.Pass, Protocol: "icmp", Destination: netip.MustParsePrefix("10.0.0.0/8"), Ports: intercept.PortRange{Low: 1, High: 1}},
		{Action: zfw.TProxy, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"), Ports: intercept.PortRange{Low: 1, High: 1}},
		{Action: zfw.Pass, Protocol: intercept.TCP, Ports: intercept.PortRange{Low: 1, High: 1}},
		{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"), Ports: intercept.PortRange{Low: 5, High: 1}},
		{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"), Source: netip.MustParsePrefix("fd00::/8"), Ports: intercept.PortRange{Low: 1, High: 1}},
		{Action: 9, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"), Ports: intercept.PortRange{Low: 1, High: 1}},
	}
	for i, r := range bad {
		if _, err := fw.Rules().Add(ctx, r); err == nil {
			t.Errorf("bad rule %d accepted", i)
		}
	}
}

// The rules API refuses what Register refuses, with an error naming the
// field: it is also what the control socket and the CLI reach.
func TestRulesAddRefusesWhatRegisterRefuses(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"}, zfw.Interface{Name: "eth1"})
	base := zfw.Rule{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"), Ports: intercept.PortRange{Low: 1, High: 1}}
	for _, tt := range []struct {
		name  string
		edit  func(*zfw.Rule)
		field string
	}{
		{"newline in the service id", func(r *zfw.Rule) { r.ServiceID = "svc\nfake rule" }, `service id "svc\nfake rule": byte 3 is 0x0a`},
		{"escape in the service id", func(r *zfw.Rule) { r.ServiceID = "\x1b[31m" }, "service id"},
		{"space in the service id", func(r *zfw.Rule) { r.ServiceID = "a b" }, "service id"},
		{"service id too long", func(r *zfw.Rule) { r.ServiceID = strings.Repeat("x", 33) }, "service id"},
		{"IPv4-mapped destination", func(r *zfw.Rule) { r.Destination = netip.MustParsePrefix("::ffff:10.0.0.0/104") }, "destination ::ffff:10.0.0.0/104: IPv4-mapped"},
		{"IPv4-mapped source", func(r *zfw.Rule) {
			r.Destination = netip.MustParsePrefix("fd00::/8")
			r.Source = netip.MustParsePrefix("::ffff:10.0.0.0/104")
		}, "source ::ffff:10.0.0.0/104: IPv4-mapped"},
		{"no destination", func(r *zfw.Rule) { r.Destination = netip.Prefix{} }, "destination (none): not a valid prefix"},
		{"repeated interface", func(r *zfw.Rule) { r.Interfaces = []string{"eth0", "eth1", "eth0"} }, `interfaces[2] "eth0": listed twice`},
		{"bad interface name", func(r *zfw.Rule) { r.Interfaces = []string{"eth0/x"} }, `interfaces[0] "eth0/x": byte 4 is 0x2f`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.edit(&r)
			_, err := fw.Rules().Add(context.Background(), r)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Add: %v, want an error with %q", err, tt.field)
			}
		})
	}
	if n := len(fw.Rules().List()); n != 0 {
		t.Errorf("%d rules stored after refusals", n)
	}
}

func TestPrefixLimitIsReported(t *testing.T) {
	fw := zfwtest.New(t)
	ctx := context.Background()
	// One service with more /32s than zt_tproxy_map holds.
	ic := svc("many", 7000)
	for i := range policy.MaxPrefixes + 1 {
		ic.Addresses = append(ic.Addresses, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	err := fw.Register(ctx, ic)
	var le *zfw.LimitError
	if !errors.As(err, &le) || le.Limit != "zt_tproxy_map" || le.Max != policy.MaxPrefixes {
		t.Fatalf("err = %v, want LimitError on zt_tproxy_map", err)
	}
	if fw.Usage().Rules != 0 {
		t.Error("rules left after the failed Register")
	}
}

func TestConcurrentRegistration(t *testing.T) {
	fw := zfwtest.New(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("w%d-%d", w, i)
				addr := fmt.Sprintf("10.%d.%d.0/24", w, i)
				if err := fw.Register(ctx, svc(id, uint16(1000+w*100+i), addr)); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := fw.Unregister(ctx, id); err != nil {
						t.Error(err)
						return
					}
				}
				_ = fw.Rules().List()
			}
		}()
	}
	wg.Wait()
	want := 8 * (50 - 17)
	if u := fw.Usage(); u.Services != want || u.Rules != want {
		t.Errorf("usage = %+v, want %d services and rules", u, want)
	}
}

func TestClosedFirewallRefusesChanges(t *testing.T) {
	fw := zfwtest.New(t)
	fw.Close()
	if err := fw.Register(context.Background(), svc("a", 7000, "10.1.0.0/24")); !errors.Is(err, zfw.ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestHugeInterceptRefusedBeforeExpansion(t *testing.T) {
	fw := zfwtest.New(t)
	ic := svc("huge", 7000)
	for i := range 300 {
		ic.Addresses = append(ic.Addresses, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32))
	}
	for p := 1; p <= 2000; p++ {
		ic.Ports = append(ic.Ports, intercept.PortRange{Low: uint16(p), High: uint16(p)})
	}
	err := fw.Register(context.Background(), ic)
	var le *zfw.LimitError
	if !errors.As(err, &le) || le.Limit != "range_map" || le.Have != 300*2000 {
		t.Fatalf("err = %v, want a range_map LimitError for 600000 rules", err)
	}
}

func TestVerdictModelsDefaultDenyPassthroughs(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0", InterfaceSettings: zfw.InterfaceSettings{DefaultDeny: true, ICMPEcho: true}})
	fw.SetAddresses("eth0", netip.MustParseAddr("192.168.1.1"))
	cases := []struct {
		name string
		p    zfwtest.Packet
		want zfw.Action
	}{
		{"SSH to the host", zfwtest.TCP("192.168.1.5:40000", "192.168.1.1:22", "eth0"), zfw.Pass},
		{"SSH elsewhere", zfwtest.TCP("192.168.1.5:40000", "192.168.1.2:22", "eth0"), zfw.Deny},
		{"DHCP reply", zfwtest.UDP("192.168.1.254:67", "192.168.1.1:68", "eth0"), zfw.Pass},
		{"other TCP", zfwtest.TCP("192.168.1.5:40000", "192.168.1.1:80", "eth0"), zfw.Deny},
		{"echo request", zfwtest.Packet{IPProto: 1, ICMPType: 8, Src: netip.MustParseAddrPort("192.168.1.5:0"), Dst: netip.MustParseAddrPort("192.168.1.1:0")}, zfw.Pass},
		{"GRE", zfwtest.Packet{IPProto: 47, Src: netip.MustParseAddrPort("192.168.1.5:0"), Dst: netip.MustParseAddrPort("192.168.1.1:0")}, zfw.Deny},
	}
	for _, c := range cases {
		if v := fw.Verdict(c.p); v.Action != c.want {
			t.Errorf("%s: %v, want %v", c.name, v.Action, c.want)
		}
	}
}
