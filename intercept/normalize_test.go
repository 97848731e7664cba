package intercept

import (
	"net/netip"
	"reflect"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for k, s := range ss {
		out[k] = netip.MustParsePrefix(s)
	}
	return out
}

func TestNormalizeSortsDeduplicatesAndMasks(t *testing.T) {
	ic := Intercept{
		ServiceID:      "svc",
		ServiceName:    "name",
		Protocols:      []Protocol{UDP, TCP, UDP},
		Addresses:      prefixes("fd00::1/64", "10.9.0.5/24", "10.0.0.0/8", "10.9.0.0/24", "10.0.0.0/16"),
		Ports:          []PortRange{{443, 443}, {80, 90}, {80, 80}, {443, 443}},
		SourcePrefixes: prefixes("::1/128", "192.168.7.1/16", "192.168.0.0/16"),
		Interfaces:     []string{"eth1", "eth0", "eth1"},
		TProxyPort:     7000,
	}
	want := Intercept{
		ServiceID:      "svc",
		ServiceName:    "name",
		Protocols:      []Protocol{TCP, UDP},
		Addresses:      prefixes("10.0.0.0/8", "10.0.0.0/16", "10.9.0.0/24", "fd00::/64"),
		Ports:          []PortRange{{80, 80}, {80, 90}, {443, 443}},
		SourcePrefixes: prefixes("192.168.0.0/16", "::1/128"),
		Interfaces:     []string{"eth0", "eth1"},
		TProxyPort:     7000,
	}
	before := ic.Addresses[0]
	got := ic.Normalize()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Normalize() =\n%+v\nwant\n%+v", got, want)
	}
	if ic.Addresses[0] != before || ic.Protocols[0] != UDP {
		t.Error("Normalize modified its receiver")
	}
	if again := got.Normalize(); !reflect.DeepEqual(again, got) {
		t.Errorf("Normalize is not idempotent: %+v", again)
	}
	got.Addresses[0] = netip.Prefix{}
	if ic.Addresses[0] != before {
		t.Error("the normalised copy shares memory with the original")
	}
}

func TestNormalizeMakesEmptyListsNil(t *testing.T) {
	ic := Intercept{ServiceID: "svc", Protocols: []Protocol{}, Addresses: []netip.Prefix{}, Interfaces: []string{}}
	n := ic.Normalize()
	if n.Protocols != nil || n.Addresses != nil || n.Ports != nil || n.SourcePrefixes != nil || n.Interfaces != nil {
		t.Errorf("Normalize() = %+v, want nil lists", n)
	}
}

func TestNormalizeKeepsInvalidValuesInvalid(t *testing.T) {
	ic := validIntercept()
	ic.Addresses = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 40), {}}
	ic.Protocols = []Protocol{"sctp", TCP}
	n := ic.Normalize()
	if len(n.Addresses) != 1 || n.Addresses[0] != (netip.Prefix{}) {
		t.Errorf("addresses %v, want one zero Prefix", n.Addresses)
	}
	if len(n.Protocols) != 2 {
		t.Errorf("protocols %v, want sctp kept", n.Protocols)
	}
	if n.Validate() == nil {
		t.Error("normalised copy of an invalid intercept is valid")
	}
}

func TestEqual(t *testing.T) {
	base := func() Intercept {
		ic := validIntercept()
		ic.Protocols = []Protocol{TCP, UDP}
		ic.Addresses = prefixes("10.9.0.0/24", "fd00::/64")
		ic.Ports = []PortRange{{80, 80}, {443, 443}}
		ic.SourcePrefixes = prefixes("192.168.0.0/16")
		ic.Interfaces = []string{"eth0", "eth1"}
		return ic
	}
	cases := []struct {
		name   string
		mutate func(*Intercept)
		equal  bool
	}{
		{"identical", func(*Intercept) {}, true},
		{"lists reordered", func(ic *Intercept) {
			ic.Protocols = []Protocol{UDP, TCP}
			ic.Addresses = prefixes("fd00::/64", "10.9.0.0/24")
			ic.Ports = []PortRange{{443, 443}, {80, 80}}
			ic.Interfaces = []string{"eth1", "eth0"}
		}, true},
		{"duplicates", func(ic *Intercept) {
			ic.Protocols = append(ic.Protocols, TCP)
			ic.Addresses = append(ic.Addresses, ic.Addresses[0])
			ic.Ports = append(ic.Ports, PortRange{80, 80})
			ic.SourcePrefixes = append(ic.SourcePrefixes, ic.SourcePrefixes[0])
			ic.Interfaces = append(ic.Interfaces, "eth0")
		}, true},
		{"unmasked prefixes", func(ic *Intercept) {
			ic.Addresses = prefixes("10.9.0.5/24", "fd00::1:2/64")
			ic.SourcePrefixes = prefixes("192.168.44.3/16")
		}, true},
		{"different service id", func(ic *Intercept) { ic.ServiceID = "other" }, false},
		{"different service name", func(ic *Intercept) { ic.ServiceName = "other" }, false},
		{"different tproxy port", func(ic *Intercept) { ic.TProxyPort++ }, false},
		{"protocol dropped", func(ic *Intercept) { ic.Protocols = []Protocol{TCP} }, false},
		{"prefix length differs", func(ic *Intercept) { ic.Addresses = prefixes("10.9.0.0/25", "fd00::/64") }, false},
		{"port range differs", func(ic *Intercept) { ic.Ports = []PortRange{{80, 81}, {443, 443}} }, false},
		{"source added", func(ic *Intercept) { ic.SourcePrefixes = prefixes("192.168.0.0/16", "::/0") }, false},
		{"sources removed", func(ic *Intercept) { ic.SourcePrefixes = nil }, false},
		{"interface removed", func(ic *Intercept) { ic.Interfaces = []string{"eth0"} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.mutate(&b)
			if got := a.Equal(b); got != tc.equal {
				t.Errorf("a.Equal(b) = %v, want %v", got, tc.equal)
			}
			if got := b.Equal(a); got != tc.equal {
				t.Errorf("b.Equal(a) = %v, want %v", got, tc.equal)
			}
			if !b.Equal(b.Normalize()) {
				t.Error("an intercept is not Equal to its normalised copy")
			}
		})
	}
}

func TestEqualTreatsNilAndEmptyListsAlike(t *testing.T) {
	a := validIntercept()
	b := validIntercept()
	a.SourcePrefixes, a.Interfaces = nil, nil
	b.SourcePrefixes, b.Interfaces = []netip.Prefix{}, []string{}
	if !a.Equal(b) {
		t.Error("nil and empty lists differ")
	}
}
