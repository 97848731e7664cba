package intercept

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/internal/policy"
)

func valid() Intercept {
	return Intercept{
		ServiceID:  "3Tq9svc",
		Protocols:  []Protocol{TCP},
		Addresses:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Ports:      []PortRange{{Low: 80, High: 80}},
		TProxyPort: 7000,
	}
}

func TestValidateNamesFieldAndLimit(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Intercept)
		field  string
		says   string
	}{
		{"empty service id", func(ic *Intercept) { ic.ServiceID = "" }, "service id", "required"},
		{"service id too long", func(ic *Intercept) { ic.ServiceID = strings.Repeat("a", 40) }, "service id", "40 bytes, at most 32"},
		{"service id with a space", func(ic *Intercept) { ic.ServiceID = "a b" }, "service id", "not printable"},
		{"service name too long", func(ic *Intercept) { ic.ServiceName = strings.Repeat("n", 64) }, "service name", "at most 63"},
		{"no protocols", func(ic *Intercept) { ic.Protocols = nil }, "protocols", "at least one"},
		{"unknown protocol", func(ic *Intercept) { ic.Protocols = []Protocol{TCP, "sctp"} }, "protocols[1]", "unknown protocol"},
		{"no addresses", func(ic *Intercept) { ic.Addresses = nil }, "addresses", "at least one"},
		{"invalid prefix", func(ic *Intercept) { ic.Addresses = append(ic.Addresses, netip.Prefix{}) }, "addresses[1]", "not a valid prefix"},
		{"mapped IPv4 prefix", func(ic *Intercept) { ic.Addresses = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")} }, "addresses[0]", "IPv4-mapped"},
		{"no ports", func(ic *Intercept) { ic.Ports = nil }, "ports", "at least one"},
		{"low port 0", func(ic *Intercept) { ic.Ports = []PortRange{{Low: 0, High: 10}} }, "ports[0]", "1-65535"},
		{"low above high", func(ic *Intercept) { ic.Ports = []PortRange{{Low: 80, High: 80}, {Low: 90, High: 80}} }, "ports[1]", "low 90 > high 80"},
		{"invalid source", func(ic *Intercept) { ic.SourcePrefixes = []netip.Prefix{{}} }, "source prefixes[0]", "not a valid prefix"},
		{"too many interfaces", func(ic *Intercept) {
			for i := range 9 {
				ic.Interfaces = append(ic.Interfaces, fmt.Sprintf("eth%d", i))
			}
		}, "interfaces", "at most 8"},
		{"interface name too long", func(ic *Intercept) { ic.Interfaces = []string{"averyveryverylongname"} }, "interfaces[0]", "1 to 15 bytes"},
		{"interface name with slash", func(ic *Intercept) { ic.Interfaces = []string{"eth/0"} }, "interfaces[0]", "not allowed"},
		{"no tproxy port", func(ic *Intercept) { ic.TProxyPort = 0 }, "tproxy port", "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := valid()
			tc.mutate(&ic)
			err := ic.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field {
				t.Errorf("field %q, want %q", fe.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if _, err := ic.Rules(nil); err == nil {
				t.Error("Rules accepted an invalid intercept")
			}
		})
	}
	if err := valid().Validate(); err != nil {
		t.Errorf("valid intercept rejected: %v", err)
	}
}

func TestNormalizeAndEqual(t *testing.T) {
	a := valid()
	a.Protocols = []Protocol{UDP, TCP, UDP}
	a.Addresses = []netip.Prefix{netip.MustParsePrefix("10.9.0.5/24"), netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("10.9.0.0/24")}
	a.Ports = []PortRange{{Low: 443, High: 443}, {Low: 80, High: 80}, {Low: 443, High: 443}}
	b := valid()
	b.Protocols = []Protocol{TCP, UDP}
	b.Addresses = []netip.Prefix{netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.9.0.0/24")}
	b.Ports = []PortRange{{Low: 80, High: 80}, {Low: 443, High: 443}}
	if !a.Equal(b) {
		t.Errorf("equal after normalisation: %+v vs %+v", a.Normalize(), b.Normalize())
	}
	n := a.Normalize()
	if len(n.Addresses) != 2 || n.Addresses[0] != netip.MustParsePrefix("10.9.0.0/24") || len(n.Ports) != 2 || len(n.Protocols) != 2 {
		t.Errorf("Normalize = %+v", n)
	}
	c := b
	c.TProxyPort++
	if c.Equal(b) {
		t.Error("different tproxy ports compare equal")
	}
	d := b
	d.Interfaces = []string{"eth0"}
	if d.Equal(b) {
		t.Error("different interfaces compare equal")
	}
}

func TestRulesExpandTheProduct(t *testing.T) {
	ic := valid()
	ic.ServiceName = "web"
	ic.Protocols = []Protocol{TCP, UDP}
	ic.Addresses = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.1/32"), netip.MustParsePrefix("fd00::/64")}
	ic.Ports = []PortRange{{Low: 80, High: 80}, {Low: 8000, High: 8100}}
	rules, err := ic.Rules(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 12 {
		t.Fatalf("%d rules, want 12", len(rules))
	}
	for _, r := range rules {
		if r.Action != policy.ActionTProxy || r.TProxyPort != 7000 || r.ServiceID != ic.ServiceID || r.ServiceName != "web" || r.Src.IsValid() {
			t.Errorf("rule %+v", r)
		}
	}
	again, _ := ic.Rules(nil)
	for i := range rules {
		if rules[i].Dst != again[i].Dst || rules[i].Proto != again[i].Proto || rules[i].PortLow != again[i].PortLow {
			t.Fatal("expansion order is not deterministic")
		}
	}
}

func TestRulesPairSourcesByFamily(t *testing.T) {
	ic := valid()
	ic.Addresses = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/64")}
	ic.SourcePrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("172.16.0.0/12")}
	rules, err := ic.Rules(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 {
		t.Fatalf("%d rules, want 2 (the IPv6 address has no IPv6 source)", len(rules))
	}
	for _, r := range rules {
		if !r.Dst.Addr().Is4() || !r.Src.Addr().Is4() {
			t.Errorf("rule %v from %v mixes families", r.Dst, r.Src)
		}
	}
	ic.SourcePrefixes = append(ic.SourcePrefixes, netip.MustParsePrefix("::/0"))
	rules, _ = ic.Rules(nil)
	if len(rules) != 3 {
		t.Fatalf("%d rules, want 3", len(rules))
	}
	for _, r := range rules {
		if r.Dst.Addr().Is6() && r.Src.IsValid() {
			t.Errorf("::/0 source should mean any source, got %v", r.Src)
		}
	}
}

func TestRulesResolveInterfaces(t *testing.T) {
	ic := valid()
	ic.Interfaces = []string{"eth1", "eth0"}
	idx := map[string]int{"eth0": 2, "eth1": 3}
	rules, err := ic.Rules(func(name string) (int, error) {
		if i, ok := idx[name]; ok {
			return i, nil
		}
		return 0, errors.New("no such interface")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rules[0].Interfaces; len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("interfaces %v, want [2 3]", got)
	}
	ic.Interfaces = []string{"eth9"}
	_, err = ic.Rules(func(string) (int, error) { return 0, errors.New("no such interface") })
	if err == nil || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("err = %v, want one naming eth9", err)
	}
}

func TestDiff(t *testing.T) {
	a, b, c := valid(), valid(), valid()
	a.ServiceID, b.ServiceID, c.ServiceID = "a", "b", "c"
	b2 := b
	b2.Ports = []PortRange{{Low: 81, High: 81}}
	a2 := a
	a2.Addresses = []netip.Prefix{netip.MustParsePrefix("10.9.0.9/24")} // same once masked
	changes, err := Diff([]Intercept{a, b}, []Intercept{c, b2, a2})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatalf("%d changes, want 2: %+v", len(changes), changes)
	}
	if changes[0].New.ServiceID != "b" || changes[0].Old == nil {
		t.Errorf("first change %+v, want b changed", changes[0])
	}
	if changes[1].New.ServiceID != "c" || changes[1].Old != nil {
		t.Errorf("second change %+v, want c added", changes[1])
	}
	changes, _ = Diff([]Intercept{a, b}, []Intercept{a})
	if len(changes) != 1 || changes[0].New != nil || changes[0].Old.ServiceID != "b" {
		t.Errorf("removal: %+v", changes)
	}
	if _, err := Diff(nil, []Intercept{a, a}); err == nil {
		t.Error("duplicate ids accepted")
	}
}

func FuzzValidateAndRules(f *testing.F) {
	f.Add("svc", "name", "tcp", "10.0.0.0/8", uint16(1), uint16(2), "192.168.0.0/16", "eth0", uint16(7000))
	f.Add("", "", "sctp", "bogus", uint16(0), uint16(0), "", "", uint16(0))
	f.Add("x", "", "udp", "fd00::1/128", uint16(65535), uint16(65535), "::/0", "a/b", uint16(1))
	f.Fuzz(func(t *testing.T, id, name, proto, addr string, low, high uint16, src, ifname string, port uint16) {
		ic := Intercept{ServiceID: id, ServiceName: name, Protocols: []Protocol{Protocol(proto)}, Ports: []PortRange{{low, high}}, TProxyPort: port}
		if p, err := netip.ParsePrefix(addr); err == nil {
			ic.Addresses = append(ic.Addresses, p)
		}
		if p, err := netip.ParsePrefix(src); err == nil {
			ic.SourcePrefixes = append(ic.SourcePrefixes, p)
		}
		if ifname != "" {
			ic.Interfaces = []string{ifname}
		}
		err := ic.Validate()
		rules, rerr := ic.Rules(func(string) (int, error) { return 2, nil })
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Validate %v but Rules %v", err, rerr)
		}
		for _, r := range rules {
			if r.PortLow == 0 || r.PortLow > r.PortHigh || r.Dst != r.Dst.Masked() {
				t.Fatalf("bad rule %+v", r)
			}
		}
	})
}
