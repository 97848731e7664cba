package intercept

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/internal/policy"
)

// noInterfaces is a resolver for intercepts that list no interfaces.
func noInterfaces(name string) (int, error) {
	return 0, fmt.Errorf("unexpected lookup of %q", name)
}

// ruleKey is the part of a rule that tests compare as text.
func ruleKey(r policy.Rule) string {
	src := "any"
	if r.Src.IsValid() {
		src = r.Src.String()
	}
	return fmt.Sprintf("%d %s %d-%d from %s", r.Proto, r.Dst, r.PortLow, r.PortHigh, src)
}

func ruleKeys(rules []policy.Rule) []string {
	out := make([]string, len(rules))
	for k, r := range rules {
		out[k] = ruleKey(r)
	}
	return out
}

func TestRulesExpandEveryProtocolAddressAndPortRange(t *testing.T) {
	ic := validIntercept()
	ic.Protocols = []Protocol{UDP, TCP}
	ic.Addresses = prefixes("10.2.0.1/32", "fd00::7/64", "10.1.3.4/16")
	ic.Ports = []PortRange{{8000, 8100}, {80, 80}}
	rules, err := ic.Rules(noInterfaces)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"6 10.1.0.0/16 80-80 from any",
		"6 10.1.0.0/16 8000-8100 from any",
		"6 10.2.0.1/32 80-80 from any",
		"6 10.2.0.1/32 8000-8100 from any",
		"6 fd00::/64 80-80 from any",
		"6 fd00::/64 8000-8100 from any",
		"17 10.1.0.0/16 80-80 from any",
		"17 10.1.0.0/16 8000-8100 from any",
		"17 10.2.0.1/32 80-80 from any",
		"17 10.2.0.1/32 8000-8100 from any",
		"17 fd00::/64 80-80 from any",
		"17 fd00::/64 8000-8100 from any",
	}
	if got := ruleKeys(rules); !reflect.DeepEqual(got, want) {
		t.Errorf("rules:\n%s\nwant (2 protocols × 3 addresses × 2 ranges, canonical order):\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := ic.RuleCount(); n != len(want) {
		t.Errorf("RuleCount() = %d, want %d", n, len(want))
	}
	for _, r := range rules {
		if r.Action != policy.ActionTProxy || r.TProxyPort != 7000 || r.ServiceID != ic.ServiceID ||
			r.ServiceName != ic.ServiceName || r.Src.IsValid() || r.Interfaces != nil ||
			r.ID != 0 || r.Seq != 0 || r.Intercept {
			t.Errorf("rule %+v", r)
		}
	}
}

func TestRulesOrderIsDeterministic(t *testing.T) {
	a := validIntercept()
	a.Protocols = []Protocol{TCP, UDP}
	a.Addresses = prefixes("10.1.0.0/16", "fd00::/64", "10.2.0.0/16")
	a.Ports = []PortRange{{80, 80}, {443, 443}}
	a.SourcePrefixes = prefixes("192.168.0.0/16", "fd01::/48", "172.16.0.0/12")
	b := a
	b.Protocols = []Protocol{UDP, TCP, UDP}
	b.Addresses = prefixes("10.2.0.9/16", "10.1.0.0/16", "fd00::/64")
	b.Ports = []PortRange{{443, 443}, {80, 80}}
	b.SourcePrefixes = prefixes("fd01::/48", "172.16.0.0/12", "192.168.0.0/16")
	first, err := a.Rules(noInterfaces)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := b.Rules(noInterfaces)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Fatalf("equal intercepts expand differently:\n%v\n%v", ruleKeys(first), ruleKeys(again))
		}
	}
}

func TestRulesPairSourcesWithAddressesOfTheirFamily(t *testing.T) {
	cases := []struct {
		name    string
		sources []netip.Prefix
		want    []string
	}{
		{"no sources: any source for both families", nil, []string{
			"6 10.1.0.0/16 80-80 from any",
			"6 fd00::/64 80-80 from any",
		}},
		{"v4 and v6 sources pair by family", prefixes("fd01::5/48", "192.168.1.1/16", "172.16.0.0/12"), []string{
			"6 10.1.0.0/16 80-80 from 172.16.0.0/12",
			"6 10.1.0.0/16 80-80 from 192.168.0.0/16",
			"6 fd00::/64 80-80 from fd01::/48",
		}},
		{"only v4 sources: the v6 address yields no rules", prefixes("192.168.0.0/16", "172.16.0.0/12"), []string{
			"6 10.1.0.0/16 80-80 from 172.16.0.0/12",
			"6 10.1.0.0/16 80-80 from 192.168.0.0/16",
		}},
		{"only v6 sources: the v4 address yields no rules", prefixes("fd01::/48"), []string{
			"6 fd00::/64 80-80 from fd01::/48",
		}},
		{"a /0 source means any client of its family", prefixes("::/0", "192.168.0.0/16"), []string{
			"6 10.1.0.0/16 80-80 from 192.168.0.0/16",
			"6 fd00::/64 80-80 from any",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := validIntercept()
			ic.Addresses = prefixes("fd00::/64", "10.1.0.0/16")
			ic.SourcePrefixes = tc.sources
			rules, err := ic.Rules(noInterfaces)
			if err != nil {
				t.Fatal(err)
			}
			if got := ruleKeys(rules); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if n := ic.RuleCount(); n != len(tc.want) {
				t.Errorf("RuleCount() = %d, want %d", n, len(tc.want))
			}
			for _, r := range rules {
				if r.Src.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
					t.Errorf("rule %s mixes families", ruleKey(r))
				}
			}
		})
	}
}

func TestRulesMayBeEmptyWhenNoAddressHasASourceOfItsFamily(t *testing.T) {
	ic := validIntercept()
	ic.Addresses = prefixes("10.1.0.0/16")
	ic.SourcePrefixes = prefixes("fd01::/48")
	rules, err := ic.Rules(noInterfaces)
	if err != nil || len(rules) != 0 {
		t.Errorf("Rules() = %v, %v; want no rules and no error", ruleKeys(rules), err)
	}
	if n := ic.RuleCount(); n != 0 {
		t.Errorf("RuleCount() = %d, want 0", n)
	}
}

func TestRulesResolveInterfaces(t *testing.T) {
	indexes := map[string]int{"eth0": 2, "eth1": 3, "lan": 3, "wan": 9}
	resolve := func(name string) (int, error) {
		if k, ok := indexes[name]; ok {
			return k, nil
		}
		return 0, fmt.Errorf("no interface %q", name)
	}
	ic := validIntercept()
	ic.Protocols = []Protocol{TCP, UDP}
	ic.Interfaces = []string{"wan", "eth1", "eth0", "lan", "eth1"}
	rules, err := ic.Rules(resolve)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 {
		t.Fatalf("%d rules, want 2", len(rules))
	}
	for _, r := range rules {
		if !reflect.DeepEqual(r.Interfaces, []int{2, 3, 9}) {
			t.Errorf("interfaces %v, want the sorted distinct indexes [2 3 9]", r.Interfaces)
		}
	}
	rules[0].Interfaces[0] = 99
	rules[0].Interfaces = append(rules[0].Interfaces, 100)
	if !reflect.DeepEqual(rules[1].Interfaces, []int{2, 3, 9}) {
		t.Errorf("changing one rule's interfaces changed another's: %v", rules[1].Interfaces)
	}
}

func TestRulesInterfaceResolutionErrors(t *testing.T) {
	errNoSuch := errors.New("no such interface")
	cases := []struct {
		name    string
		resolve func(string) (int, error)
		says    string
		wraps   error
	}{
		{"resolver fails", func(name string) (int, error) {
			if name == "eth9" {
				return 0, errNoSuch
			}
			return 2, nil
		}, `intercept "3Tq9svc": interface "eth9": no such interface`, errNoSuch},
		{"no resolver", nil, `intercept "3Tq9svc": interface "eth0": no resolver`, nil},
		{"index 0", func(string) (int, error) { return 0, nil }, `interface "eth0": resolved to index 0; interface indexes are positive`, nil},
		{"negative index", func(string) (int, error) { return -4, nil }, "resolved to index -4", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic := validIntercept()
			ic.Interfaces = []string{"eth9", "eth0"}
			rules, err := ic.Rules(tc.resolve)
			if err == nil || rules != nil {
				t.Fatalf("Rules() = %d rules, %v; want an error", len(rules), err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if tc.wraps != nil && !errors.Is(err, tc.wraps) {
				t.Errorf("error %q does not wrap %q", err, tc.wraps)
			}
		})
	}
}

func TestRulesDoNotCallTheResolverWithoutInterfaces(t *testing.T) {
	ic := validIntercept()
	if _, err := ic.Rules(nil); err != nil {
		t.Errorf("Rules(nil) = %v", err)
	}
	called := false
	if _, err := ic.Rules(func(string) (int, error) { called = true; return 1, nil }); err != nil || called {
		t.Errorf("Rules() = %v, resolver called %v", err, called)
	}
}

func TestRulesRejectAnExpansionBeyondTheRuleIDSpace(t *testing.T) {
	// 2 protocols × 65535 single ports × 65536 addresses > 2^32 rules.
	if math.MaxInt < math.MaxUint32 {
		t.Skip("an int cannot count past the rule id space")
	}
	ic := validIntercept()
	ic.Protocols = []Protocol{TCP, UDP}
	ic.Ports = make([]PortRange, 0, math.MaxUint16)
	for p := 1; p <= math.MaxUint16; p++ {
		ic.Ports = append(ic.Ports, PortRange{uint16(p), uint16(p)})
	}
	ic.Addresses = make([]netip.Prefix, 0, 1<<16)
	for k := range 1 << 16 {
		ic.Addresses = append(ic.Addresses, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(k >> 8), byte(k)}), 32))
	}
	want := int64(2*math.MaxUint16) << 16
	if n := ic.RuleCount(); int64(n) != want {
		t.Errorf("RuleCount() = %d, want %d", n, want)
	}
	rules, err := ic.Rules(nil)
	if err == nil || rules != nil {
		t.Fatalf("Rules() = %d rules, %v; want an error", len(rules), err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("expands to %d rules, at most %d", want, uint32(math.MaxUint32))) {
		t.Errorf("error %q does not give the count and the limit", err)
	}
}

func TestRuleCountSaturates(t *testing.T) {
	if got := mulSat(math.MaxInt/2+1, 2); got != math.MaxInt {
		t.Errorf("mulSat overflowed to %d", got)
	}
	if got := addSat(math.MaxInt-1, 2); got != math.MaxInt {
		t.Errorf("addSat overflowed to %d", got)
	}
	if got := countText(math.MaxInt); !strings.HasPrefix(got, "more than") {
		t.Errorf("countText(MaxInt) = %q", got)
	}
}
