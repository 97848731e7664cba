package main

import (
	"strings"
	"testing"
)

// -L lists every rule and the usage; -i, -f and -z narrow the rules it
// shows, never the usage.
func TestListShowsTheRulesAskedFor(t *testing.T) {
	p := served(t)
	p.must(t, "-I -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0")
	p.must(t, "-I -c 10.7.0.1 -m 32 -p udp -l 53 -h 53 -t 4000 -s svc")
	p.must(t, "-I -z egress -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0")
	for _, tc := range []struct {
		list string
		want []string // the mapping of each rule shown
	}{
		{"-L", []string{"PASSTHRU", "TPROXY", "ALLOW"}},
		{"-L -i", []string{"TPROXY"}},
		{"-L -f", []string{"PASSTHRU", "ALLOW"}},
		{"-L -z egress", []string{"ALLOW"}},
		{"-L -z ingress", []string{"PASSTHRU", "TPROXY"}},
		{"-L -f -z ingress", []string{"PASSTHRU"}},
		{"-L -6 all", []string{"PASSTHRU", "TPROXY", "ALLOW"}},
	} {
		t.Run(tc.list, func(t *testing.T) {
			out := p.must(t, tc.list)
			got := rows(out)
			if len(got) != len(tc.want) {
				t.Fatalf("zfw %s: %d rules, want %d:\n%s", tc.list, len(got), len(tc.want), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("zfw %s lacks a %s rule:\n%s", tc.list, w, out)
				}
			}
			if !strings.Contains(out, "Rule Count: 3 / 4096") {
				t.Errorf("zfw %s: the usage is not of every rule:\n%s", tc.list, out)
			}
		})
	}
}
