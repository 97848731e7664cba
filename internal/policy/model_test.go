package policy

import (
	"net/netip"
	"testing"
)

func rule(id uint32, dst, src string, low, high uint16, a Action) Rule {
	r := Rule{ID: id, Seq: uint64(id), Proto: ProtoTCP, Dst: netip.MustParsePrefix(dst), PortLow: low, PortHigh: high, Action: a}
	if src != "" {
		r.Src = netip.MustParsePrefix(src)
	}
	if a == ActionTProxy {
		r.TProxyPort = 7000 + uint16(id)
	}
	return r
}

func pkt(src, dst string, port uint16) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: ProtoTCP, SrcPort: 40000, DstPort: port, Ifindex: 2}
}

func TestEvaluatePrecedence(t *testing.T) {
	rules := []Rule{
		rule(1, "0.0.0.0/0", "", 1, 65535, ActionPass),
		rule(2, "10.0.0.0/8", "", 80, 80, ActionTProxy),
		rule(3, "10.1.0.0/16", "", 443, 443, ActionDeny),
		rule(4, "10.1.0.0/16", "192.168.0.0/16", 443, 443, ActionTProxy),
		rule(5, "10.1.0.0/16", "", 443, 443, ActionPass), // same key as 3, later
	}
	cases := []struct {
		name string
		p    Packet
		want uint32
	}{
		{"longest destination wins", pkt("1.1.1.1", "10.1.2.3", 443), 3},
		{"longest source wins under one destination", pkt("192.168.1.1", "10.1.2.3", 443), 4},
		{"falls through when the longest has no port", pkt("1.1.1.1", "10.1.2.3", 80), 2},
		{"broad allow for the rest", pkt("1.1.1.1", "10.1.2.3", 22), 1},
		{"IPv6 matches no IPv4 rule", pkt("fd00::1", "fd00::2", 80), 0},
	}
	for _, c := range cases {
		if got := Evaluate(rules, Interface{}, c.p); got.RuleID != c.want {
			t.Errorf("%s: rule %d, want %d", c.name, got.RuleID, c.want)
		}
	}
}

func TestEvaluateDefaultsAndInterfaces(t *testing.T) {
	r := rule(1, "10.0.0.0/8", "", 80, 80, ActionTProxy)
	r.Interfaces = []int{3}
	rules := []Rule{r, rule(2, "10.0.0.0/8", "", 22, 22, ActionPass)}
	if d := Evaluate(rules, Interface{}, pkt("1.1.1.1", "10.0.0.1", 80)); d.Action != ActionPass || d.RuleID != 0 {
		t.Errorf("rule for another interface matched: %+v", d)
	}
	p := pkt("1.1.1.1", "10.0.0.1", 80)
	p.Ifindex = 3
	if d := Evaluate(rules, Interface{}, p); d.RuleID != 1 || d.TProxyPort != 7001 {
		t.Errorf("rule for this interface: %+v", d)
	}
	if d := Evaluate(rules, Interface{DefaultDeny: true}, pkt("1.1.1.1", "10.0.0.1", 81)); d.Action != ActionDeny {
		t.Errorf("default deny: %+v", d)
	}
	if d := Evaluate(rules, Interface{PerInterface: true}, pkt("1.1.1.1", "10.0.0.1", 22)); d.RuleID != 0 {
		t.Errorf("per-interface setting applied an unlisted rule: %+v", d)
	}
	other := pkt("1.1.1.1", "10.0.0.1", 22)
	other.Proto = 1
	if d := Evaluate(rules, Interface{DefaultDeny: true}, other); d.Action != ActionDeny {
		t.Errorf("ICMP on default deny: %+v", d)
	}
}

func TestEvaluateFragments(t *testing.T) {
	frag := func(dst string) Packet { p := pkt("1.1.1.1", dst, 0); p.Fragment = true; return p }
	rules := []Rule{
		rule(1, "10.0.0.0/8", "", 80, 80, ActionTProxy),
		rule(2, "11.0.0.0/8", "", 1, 65535, ActionPass),
		rule(3, "12.0.0.0/8", "", 1000, 2000, ActionPass),
	}
	cases := []struct {
		dst  string
		deny bool
		want Action
	}{
		{"10.0.0.1", false, ActionDeny},
		{"11.0.0.1", true, ActionPass},
		{"12.0.0.1", true, ActionDeny},
		{"12.0.0.1", false, ActionPass},
		{"13.0.0.1", false, ActionPass},
		{"13.0.0.1", true, ActionDeny},
	}
	for _, c := range cases {
		if d := Evaluate(rules, Interface{DefaultDeny: c.deny}, frag(c.dst)); d.Action != c.want {
			t.Errorf("fragment to %s (default deny %v): %v, want %v", c.dst, c.deny, d.Action, c.want)
		}
	}
}

func TestLengthsLongestFirst(t *testing.T) {
	keys := []PrefixKey{
		{false, ProtoTCP, netip.MustParsePrefix("10.0.0.0/8")},
		{false, ProtoTCP, netip.MustParsePrefix("10.1.0.0/16")},
		{false, ProtoTCP, netip.MustParsePrefix("10.2.0.0/16")},
		{false, ProtoUDP, netip.MustParsePrefix("10.0.0.0/24")},
		{false, ProtoTCP, netip.MustParsePrefix("fd00::/64")},
	}
	l := Lengths(keys)
	tcp4 := l[LensKey{false, 4, ProtoTCP}]
	if len(tcp4) != 2 || tcp4[0] != 16 || tcp4[1] != 8 {
		t.Errorf("tcp4 lengths %v, want [16 8]", tcp4)
	}
	if got := l[LensKey{false, 6, ProtoTCP}]; len(got) != 1 || got[0] != 64 {
		t.Errorf("tcp6 lengths %v", got)
	}
	if (LensKey{false, 6, ProtoUDP}).MapKey() != 6<<8|17 || (LensKey{true, 6, ProtoUDP}).MapKey() != 1<<16|6<<8|17 {
		t.Error("map key layout")
	}
}
