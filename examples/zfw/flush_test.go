package main

import (
	"strings"
	"testing"
)

// -F removes the rules of both directions; -F -z removes one
// direction's only.
func TestFlushRemovesTheRulesOfItsDirections(t *testing.T) {
	for _, tc := range []struct {
		flush string
		left  []string // directions of the rules left
	}{
		{"-F", nil},
		{"-F -z ingress -r", []string{"egress"}},
		{"--flush --direction=egress", []string{"ingress", "ingress"}},
	} {
		t.Run(tc.flush, func(t *testing.T) {
			p := served(t)
			p.must(t, "-I -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0")
			p.must(t, "-I -c 10.7.0.1 -m 32 -p udp -l 53 -h 53 -t 4000 -s svc")
			p.must(t, "-I -z egress -c 10.9.0.0 -m 16 -p tcp -l 443 -h 443 -t 0")
			p.must(t, tc.flush)
			var left []string
			for _, r := range rows(p.must(t, "-L")) {
				left = append(left, strings.Fields(r)[1])
			}
			if strings.Join(left, " ") != strings.Join(tc.left, " ") {
				t.Errorf("after zfw %s: rules of %q left, want %q", tc.flush, left, tc.left)
			}
		})
	}
}
