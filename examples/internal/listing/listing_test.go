package listing

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"unicode"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// The rules listing shows, in the order Rules().List() gives (the most
// specific first), each rule's type, direction, destination,
// ports, interfaces and the counts against the limits.
func TestRulesListsEachRuleAndTheCounts(t *testing.T) {
	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"}, zfw.Interface{Name: "eth1"})
	ctx := context.Background()
	rules := []zfw.Rule{
		{Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("0.0.0.0/0"), Ports: intercept.PortRange{Low: 1, High: 65535}},
		{Action: zfw.Deny, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.9.0.5/32"), Ports: intercept.PortRange{Low: 22, High: 22}, Interfaces: []string{"eth1"}},
		{Action: zfw.Deny, Protocol: intercept.UDP, Destination: netip.MustParsePrefix("10.9.0.6/32"), Source: netip.MustParsePrefix("10.1.0.0/16"), Ports: intercept.PortRange{Low: 53, High: 53}, Egress: true},
	}
	for _, r := range rules {
		if _, err := fw.Rules().Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var sb strings.Builder
	if err := Rules(&sb, fw.Rules().List(), fw.Usage()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(sb.String(), "\n"), "\n")
	want := [][]string{
		{"type", "direction", "service id", "proto", "origin", "destination", "mapping", "interfaces", "hits"},
		{"deny", "ingress", "-", "tcp", "any", "10.9.0.5/32", "dpts=22:22", "eth1"},
		{"accept", "ingress", "-", "tcp", "any", "0.0.0.0/0", "dpts=1:65535", "all"},
		{"deny", "egress", "-", "udp", "10.1.0.0/16", "10.9.0.6/32", "dpts=53:53", "all"},
		{"Rule Count: 3 / 250000"},
		{"prefix_tuple_count:"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), sb.String())
	}
	for i, fields := range want {
		for _, f := range fields {
			if !strings.Contains(lines[i], f) {
				t.Errorf("line %d lacks %q: %q", i, f, lines[i])
			}
		}
	}
}

// A listing prints no control byte, whatever a rule holds.
func TestRulesPrintsNoControlByte(t *testing.T) {
	rules := []zfw.RuleInfo{{
		Action: zfw.Pass, Protocol: intercept.TCP, Destination: netip.MustParsePrefix("10.0.0.0/8"),
		Ports: intercept.PortRange{Low: 1, High: 1}, ServiceID: "a\x1b[2Jb\nc", Interfaces: []string{"eth\t0"},
	}}
	var sb strings.Builder
	if err := Rules(&sb, rules, zfw.Usage{}); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if k := strings.IndexFunc(line, unicode.IsControl); k >= 0 {
			t.Errorf("line %d has control character %q at %d: %q", i, line[k], k, line)
		}
	}
	for _, want := range []string{`"a\x1b[2Jb\nc"`, `"eth\t0"`} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %s:\n%s", want, out)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"eth0", "eth0"},
		{"3TqdLrTn2A2F9vSi5JkQpx", "3TqdLrTn2A2F9vSi5JkQpx"},
		{"a b", `"a b"`},
		{"a\x1bb", `"a\x1bb"`},
		{"\xff", `"\xff"`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
